"""Value specifications of configuration keys: what a key allows, and the one-line error when it does not.

Each model states its own keys with these (``CONFIG_RULES`` on the model class, next to the model's YAML,
docs/design.md §3); :mod:`recbole_gemirec.validation` reads them. A spec answers ``accepts(value)`` and
describes itself for the message ``key=value is not allowed; allowed: <description>``.
"""

import math
import numbers

from recbole_gemirec.errors import ConfigError

class Spec:
    """One allowed set of values: ``accepts(value)`` and a human description for the error message."""

    description = "a valid value"

    def accepts(self, value):
        raise NotImplementedError

    def why(self, value):
        """A precise reason why ``value`` was refused, where the description alone does not say; or None."""
        return None

    def __str__(self):
        return self.description


#: The largest integer a setting may hold when its spec names no maximum: torch, numpy and Python's
#: ``itertools.islice`` (batching) take 64-bit integers, so a larger one fails deep inside them.
INT64_MAX = 2 ** 63 - 1

#: The largest seed: numpy's ``np.random.seed`` and scikit-learn's ``random_state`` take 0 .. 2**32 - 1.
SEED_MAX = 2 ** 32 - 1


class Integer(Spec):
    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        self.description = "an integer" + (" " + " and ".join(bounds) if bounds else "")

    def accepts(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        if self.maximum is None and abs(value) > INT64_MAX:
            return False
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)

    def why(self, value):
        if (isinstance(value, numbers.Integral) and not isinstance(value, bool) and self.maximum is None
                and abs(value) > INT64_MAX):
            return "it does not fit in 64 bits (at most 2**63 - 1)"
        return None


class Real(Spec):
    def __init__(self, minimum=None, maximum=None, *, min_open=False, max_open=False, infinite=False):
        self.minimum, self.maximum = minimum, maximum
        self.min_open, self.max_open, self.infinite = min_open, max_open, infinite
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if min_open else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"{'<' if max_open else '<='} {maximum}")
        kind = "a number" if infinite else "a finite number"
        self.description = kind + (" " + " and ".join(bounds) if bounds else "") + (" (or .inf)" if infinite else "")

    def accepts(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not (self.infinite and value > 0)):
            return False
        if self.minimum is not None and (value < self.minimum or (self.min_open and value == self.minimum)):
            return False
        if self.maximum is not None and (value > self.maximum or (self.max_open and value == self.maximum)):
            return False
        return True


class Boolean(Spec):
    description = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


class String(Spec):
    """A non-empty string; by default described as a field name."""

    description = "a field name (string)"

    def __init__(self, description=None):
        if description is not None:
            self.description = description

    def accepts(self, value):
        return isinstance(value, str) and value != ""


class DeviceIds(Spec):
    """RecBole's ``gpu_id``: CUDA device indices as ``CUDA_VISIBLE_DEVICES`` takes them (``0``, ``"0,1"``), or
    empty for none. Anything else hides every GPU and the run quietly trains on the CPU."""

    description = "'' (no GPU) or CUDA device indices such as 0 or '0,1'"

    def accepts(self, value):
        if isinstance(value, bool):
            return False
        if isinstance(value, int):
            return value >= 0
        if not isinstance(value, str):
            return False
        parts = [p.strip() for p in value.split(",")]
        return value.strip() == "" or all(p.isdigit() for p in parts)


class Word(Spec):
    """One of ``words``, in any letter case (RecBole lower-cases such settings itself)."""

    def __init__(self, *words):
        self.words = words
        self.description = "one of " + ", ".join(repr(w) for w in words) + " (any case)"

    def accepts(self, value):
        return isinstance(value, str) and value.lower() in self.words


class OneOf(Spec):
    def __init__(self, *values):
        self.values = values
        self.description = "one of " + ", ".join(repr(v) for v in values)

    def accepts(self, value):
        return any(value == v and type(value) is type(v) for v in self.values)


class Optional(Spec):
    """``~`` (null: the documented default) or a value of ``spec``."""

    def __init__(self, spec):
        self.spec = spec
        self.description = f"~ (null) or {spec}"

    def accepts(self, value):
        return value is None or self.spec.accepts(value)

    def why(self, value):
        return None if value is None else self.spec.why(value)


class Either(Spec):
    """A value of any of ``specs``."""

    def __init__(self, *specs):
        self.specs = specs
        self.description = " or ".join(str(spec) for spec in specs)

    def accepts(self, value):
        return any(spec.accepts(value) for spec in self.specs)


class ListOf(Spec):
    def __init__(self, spec, *, length=None, min_length=1):
        self.spec, self.length, self.min_length = spec, length, min_length
        if length is not None:
            size = f"exactly {length}"
        elif min_length:
            size = f"at least {min_length}"
        else:
            size = "any number of"
        self.description = f"a list of {size} item(s), each {spec}"

    def accepts(self, value):
        if not isinstance(value, (list, tuple)):
            return False
        if self.length is not None and len(value) != self.length:
            return False
        if len(value) < self.min_length:
            return False
        return all(self.spec.accepts(v) for v in value)


class ScalarOrList(Spec):
    def __init__(self, spec):
        self.spec = spec
        self.description = f"{spec}, or a non-empty list of such"

    def accepts(self, value):
        if isinstance(value, (list, tuple)):
            return len(value) > 0 and all(self.spec.accepts(v) for v in value)
        return self.spec.accepts(value)


class Interval(Spec):
    """RecBole's interval text, e.g. ``[5,inf)`` or ``(0,1];[3,4)``: brackets, two numbers, left <= right.
    RecBole drops a malformed interval with a warning, so the filter silently does nothing."""

    description = "intervals like '[5,inf)' or '(0,1];[3,4)': [ or (, two numbers (inf allowed) low <= high, ] or )"

    def accepts(self, value):
        if isinstance(value, (list, tuple)):  # YAML reads [5, 10] unquoted as a list; RecBole uses str(value)
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return False
        for part in value.split(";"):
            part = part.strip()
            if len(part) < 2 or part[0] not in "([" or part[-1] not in ")]":
                return False
            ends = part[1:-1].split(",")
            if len(ends) != 2:
                return False
            try:
                low, high = float(ends[0]), float(ends[1])
            except ValueError:
                return False
            if math.isnan(low) or math.isnan(high) or low > high:
                return False
        return True


class MappingOf(Spec):
    def __init__(self, spec, keys="field"):
        self.spec = spec
        self.description = f"a mapping {keys}: value, each value {spec}"

    def accepts(self, value):
        return isinstance(value, dict) and all(isinstance(k, str) and self.spec.accepts(v) for k, v in value.items())


def fail(key, value, allowed, why=None):
    """Raise the one-line :class:`ConfigError` for ``key=value``: what was wrong (``why``) and what is allowed."""
    reason = f": {why}" if why else ""
    raise ConfigError(f"{key}={value!r} is not allowed{reason}; allowed: {allowed}")
