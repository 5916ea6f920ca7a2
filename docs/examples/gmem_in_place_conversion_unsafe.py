"""A seeded bug of the in-place conversion proposal: the conversion to private no longer asks
kvm_gmem_is_safe_for_conversion(), so a page the host has pinned becomes private under its pin.
Applied after the proposal:

    pkvm-model explore --profile gmem --extension docs/examples/gmem_in_place_conversion.py \\
        --extension docs/examples/gmem_in_place_conversion_unsafe.py
"""


def extend(ext):
    ext.drop_check("set_attributes2", "kvm_gmem_is_safe_for_conversion")
