"""The one error type the CLI turns into a single red line and a non-zero exit."""

import difflib


class NoisyctlError(Exception):
    """A problem the user can fix: bad input, a missing file, an unknown name.

    Not a subclass of KeyError or ValueError on purpose: the message is printed
    as it is, and code never catches it by accident as a programming error.
    """


def nearest(word: str, choices: list[str] | tuple[str, ...]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing: for any error naming an unknown word."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def check_share(value: float, what: str) -> float:
    """``value`` as a share in [0, 1), refused outside it; 1 to 100 reads as a percentage meant
    (``noise rate 5.0 is outside [0, 1) (5% is 0.05)``)."""
    if not 0.0 <= value < 1.0:
        meant = f" ({value:g}% is {value / 100:g})" if 1.0 <= value < 100.0 else ""
        raise NoisyctlError(f"{what} {value} is outside [0, 1){meant}")
    return float(value)


class GateFailed(NoisyctlError):
    """A CI gate (detect --fail-above / --fail-count) found too much noise: exit code 3, so a job can
    tell "the data is too noisy" from "the command could not run" (exit code 1)."""

    exit_code = 3
