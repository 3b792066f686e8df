"""NHS numbers: ten digits with a Modulus 11 check digit, and allocation from a range (pure)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import nhs_number

from .outcome import NHS_NUMBER_SYSTEM, RecordError


def is_valid(text: str) -> bool:
    """Exactly ten ASCII digits whose last is the Modulus 11 check digit of the first nine."""
    # The package tolerates spaces and other forms; a resource id must be the bare number.
    return (
        isinstance(text, str)
        and len(text) == 10
        and text.isascii()
        and text.isdigit()
        and nhs_number.is_valid(text)
    )


def with_check_digit(nine: str) -> str | None:
    """The NHS number with these nine digits, or None when no check digit exists (it'd be 10)."""
    digit = nhs_number.calculate_checksum(nine)
    if digit is None or digit == 10:
        return None
    # is_valid also checks range rules beyond the check digit (a Scottish CHI number starts
    # with a date of birth), so a number is only handed out when it would be accepted back.
    number = nine + str(digit)
    return number if is_valid(number) else None


def parse_identifier(text: str, code: str = "INVALID_VALUE", what: str = "patient") -> str:
    """`https://fhir.nhs.uk/Id/nhs-number|N` or a bare N -> N, refused unless N is valid."""
    system, bar, value = text.rpartition("|")
    if bar and system != NHS_NUMBER_SYSTEM:
        raise RecordError(code, f"{what}: identifier system must be {NHS_NUMBER_SYSTEM}")
    if not is_valid(value):
        raise RecordError(code, f"{what}: {value!r} is not a valid NHS number")
    return value


def candidates(seed: str, first: int, last: int) -> Iterator[str]:
    """Valid NHS numbers in [first, last] in an order fixed by `seed`.

    Allocation walks this sequence, so a create retried with the same request id tries the
    same numbers in the same order and finds the patient its first attempt made.
    """
    prefix_low, prefix_high = first // 10, last // 10
    span = prefix_high - prefix_low + 1
    for attempt in range(4 * span if span < 64 else 64):
        digest = hashlib.sha256(f"{seed}/{attempt}".encode()).digest()
        prefix = prefix_low + int.from_bytes(digest[:8], "big") % span
        number = with_check_digit(f"{prefix:09d}")
        if number is not None and first <= int(number) <= last:
            yield number
