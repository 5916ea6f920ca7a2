"""pkvm-model: a model checker for the page-ownership protocol of pKVM guests."""
