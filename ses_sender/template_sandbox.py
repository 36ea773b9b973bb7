"""The sandbox templates render in, with a bound on the work one email's templates may do.

Jinja's sandbox keeps a template from reaching anything unsafe, and caps one `range` at
100,000 items, but lets it work without end: loops within loops, macros calling themselves, a
string multiplied into gigabytes. Rendering runs on the event loop, so one such template would
hold the whole process. Here every render spends from a budget of steps (`work_budget`): each
loop iteration, each call (a macro, `caller()`, a recursive loop's `loop()`, a method), each
item of a `range`, each KiB of text or item of a list an operator, filter or call builds, and
what each filter, test or method call is given to read: each item of a list, 8 characters of
text, or each character of text a filter goes through item by item (`sort`, `map`). What would
build or read more than the budget allows is refused before it runs, and a CPU-time backstop,
looked at after every call and as steps are spent, bounds whatever a single step may cost
(docs/decisions/0027-templates-compiled-once-rendered-in-sandbox.md).
"""

from __future__ import annotations

import functools
import inspect
import re
import string
import time
from collections.abc import (
    Callable,
    Collection,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sized,
)
from contextvars import ContextVar
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.runtime import Context, LoopContext, Macro, Undefined
from jinja2.sandbox import SandboxedEnvironment, safe_range
from jinja2.visitor import NodeTransformer

# Documented in the README ("Limits").
MAX_RENDER_STEPS = 50_000  # per email: its subject, HTML and text together
CHARS_PER_STEP = 256  # text built per step
ITEMS_PER_STEP = 1  # items of a list, tuple or dict built or read per step
# Text a filter, test or method reads per step: the slowest of Jinja's text filters
# (`striptags`, `title`, `urlize` over nothing but tags or words) take about 1.2 µs for 8.
READ_CHARS_PER_STEP = 8
# A macro's call costs about as much as thirty loop iterations.
MACRO_CALL_STEPS = 32
# The backstop for what steps do not see (long strings compared): far above what the steps
# allow (a render that spends them all takes 20-70 ms), so that neither a slower machine nor a
# garbage collection during a render fails a legitimate email for good.
MAX_RENDER_CPU_SECONDS = 0.5
MAX_INTEGER_BITS = 14_000  # about the 4,300 digits Python still turns into text
_CLOCK_EVERY = 64  # steps between looks at the CPU clock

_COUNTED = "ses_sender_counted"  # the filter a loop's iterable is wrapped in
_SIZED = "ses_sender_sized"  # the filter a `~` concatenation is wrapped in
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0 +-]*(\*|\d+)?(?:\.(\*|\d+))?")
_DIGITS = re.compile(r"\d+")


class WorkExceeded(Exception):
    """A template that would do more work than one email's budget allows."""


class _Budget:
    __slots__ = ("deadline", "next_look", "steps")

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.next_look = MAX_RENDER_STEPS - _CLOCK_EVERY
        self.deadline = time.thread_time() + MAX_RENDER_CPU_SECONDS

    def spend(self, steps: int) -> None:
        self.steps -= steps
        if self.steps < self.next_look:
            self.look()

    def after_call(self) -> None:
        if time.thread_time() > self.deadline:
            self.look()

    def look(self) -> None:
        if self.steps < 0:
            raise WorkExceeded(
                f"template work over {MAX_RENDER_STEPS} steps (loop iterations, calls, text built)"
            )
        if time.thread_time() > self.deadline:
            raise WorkExceeded(f"template work over {MAX_RENDER_CPU_SECONDS * 1000:g} ms of CPU")
        self.next_look = self.steps - _CLOCK_EVERY


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_work_budget", default=None)


class work_budget:  # a context manager named as the function it replaces
    """Renders within this block spend from one budget; a block within another shares its
    budget. A class, not a generator: it is entered for every part of every email."""

    __slots__ = ("_token",)

    def __enter__(self) -> None:
        self._token = None if _BUDGET.get() is not None else _BUDGET.set(_Budget())

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _BUDGET.reset(self._token)


def _budget() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:
        raise WorkExceeded("a template rendered outside a work budget")
    return budget


def _spend(steps: int) -> None:
    _budget().spend(steps)


def _spend_on_size(value: object) -> None:
    if isinstance(value, str):
        built = len(value) // CHARS_PER_STEP
    elif isinstance(value, list | tuple | dict):
        built = len(value) // ITEMS_PER_STEP
    else:
        return
    if built:
        _spend(built)


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    budget = _budget()
    for item in iterable:
        budget.steps -= 1
        if budget.steps < budget.next_look:
            budget.look()
        yield item


def _read(value: Any, *, by_item: bool = False) -> Any:
    """Spends what reading `value` costs, an item of a list or `READ_CHARS_PER_STEP` characters
    of text (or each character, `by_item`) a step; a one-pass iterable is returned counted as
    it is read."""
    if isinstance(value, str):
        read = len(value) // (ITEMS_PER_STEP if by_item else READ_CHARS_PER_STEP)
    elif isinstance(value, Undefined):
        return value
    elif isinstance(value, Sized):
        read = len(value) // ITEMS_PER_STEP
    elif isinstance(value, Iterator):
        return _counted(value)
    else:
        return value
    if read:
        _spend(read)
    return value


def _read_all(
    args: tuple[Any, ...], kwargs: dict[str, Any], *, value_by_item: bool = False
) -> tuple[Any, ...]:
    """`_read` for each argument; the first, the value, by item when `value_by_item`."""
    for argument in kwargs.values():
        _read(argument)
    return tuple(
        _read(argument, by_item=value_by_item and at == 0) for at, argument in enumerate(args)
    )


# Filters that take the template's context: never run when the template is compiled.
@pass_context
def _counted_filter(context: Context, iterable: Iterable[Any]) -> Iterator[Any]:
    return _counted(iterable)


@pass_context
def _sized(context: Context, value: Any) -> Any:
    _spend_on_size(value)
    return value


def _budgeted_range(*args: int) -> range:
    _spend(len(range(*args)))
    return safe_range(*args)


def _budgeted_lipsum(
    lipsum: Callable[..., str],
) -> Callable[..., str]:
    @functools.wraps(lipsum)
    def budgeted(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
        _spend(_width(n) * _width(max) * 8 // CHARS_PER_STEP)  # a word: about eight characters
        return lipsum(n, html, min, max)

    return budgeted


def _length(value: object) -> int:
    return len(value) if isinstance(value, Collection) else 0


def _width(value: object) -> int:
    """How much text an argument that sets a width (a number, or text repeated) may add."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return max(value, 0)
    return _length(value)


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], at: int, name: str) -> Any:
    return args[at] if len(args) > at else kwargs.get(name)


def _replaced(text: object, old: object, new: object, count: object) -> int:
    if not isinstance(text, str) or not isinstance(old, str):
        return 0
    found = len(text) + 1 if not old else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * _length(new)


def _format_widths(template: object) -> int:
    """What a `%` or `str.format` template's widths and precisions may add; a width taken from
    the arguments (`*`, a nested field) is refused, as it cannot be known beforehand."""
    if not isinstance(template, str):
        return 0
    if "%" in template:
        added = 0
        for field in _PERCENT_FIELD.finditer(template):
            if "*" in field.group(0):
                raise WorkExceeded("a '*' width in a format is not supported")
            added += sum(int(number or 0) for number in field.groups())
        return added
    return 0


def _format_spec_widths(template: object) -> int:
    if not isinstance(template, str) or "{" not in template:
        return 0
    added = 0
    try:
        fields = list(string.Formatter().parse(template))
    except ValueError:
        return 0  # the format call itself reports it
    for _, _, spec, _ in fields:
        if spec and "{" in spec:
            raise WorkExceeded("a width taken from the arguments in a format is not supported")
        added += sum(int(number) for number in _DIGITS.findall(spec or ""))
    return added


# What a filter may build, from its arguments (the value first), in characters or items:
# those whose output can grow far past their input.
Estimate = Callable[[tuple[Any, ...], dict[str, Any]], int]
_FILTER_ESTIMATES: dict[str, Estimate] = {
    "center": lambda a, k: _width(_argument(a, k, 1, "width")),
    "indent": lambda a, k: (str(a[0]).count("\n") + 1) * _width(_argument(a, k, 1, "width") or 4),
    "join": lambda a, k: _length(a[0]) * _width(_argument(a, k, 1, "d")),
    "replace": lambda a, k: _replaced(
        a[0], _argument(a, k, 1, "old"), _argument(a, k, 2, "new"), _argument(a, k, 3, "count")
    ),
    # A step a line at least: each costs about a microsecond, and more for a long word.
    "wordwrap": lambda a, k: (
        (_length(a[0]) // max(_width(_argument(a, k, 1, "width") or 79), 1) + 1)
        * max(_width(_argument(a, k, 3, "wrapstring")), CHARS_PER_STEP)
    ),
    "format": lambda a, k: _format_widths(a[0]),
    "slice": lambda a, k: _width(_argument(a, k, 1, "slices")),
    "batch": lambda a, k: _width(_argument(a, k, 1, "linecount")),
    "sum": lambda a, k: _numbers_only(_argument(a, k, 2, "start")),
}
# The estimates that need the length of the value.
_MEASURED = frozenset({_FILTER_ESTIMATES["join"]})


def _numbers_only(start: object) -> int:
    """`sum` adds numbers: lists or text added one to another cost the square of their size."""
    if start is not None and not isinstance(start, int | float):
        raise WorkExceeded("sum adds numbers only")
    return 0


# The same for a method of text, called on `target`.
_METHOD_ESTIMATES: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], int]] = {
    "center": lambda t, a, k: _width(_argument(a, k, 0, "width")),
    "ljust": lambda t, a, k: _width(_argument(a, k, 0, "width")),
    "rjust": lambda t, a, k: _width(_argument(a, k, 0, "width")),
    "zfill": lambda t, a, k: _width(_argument(a, k, 0, "width")),
    "expandtabs": lambda t, a, k: t.count("\t") * _width(_argument(a, k, 0, "tabsize") or 8),
    "replace": lambda t, a, k: _replaced(t, a[0] if a else "", a[1] if len(a) > 1 else "", None),
    "join": lambda t, a, k: _length(a[0] if a else ()) * len(t),
}
# The same for a method of a list.
_LIST_METHOD_ESTIMATES: dict[str, Callable[[Any, tuple[Any, ...], dict[str, Any]], int]] = {
    "extend": lambda t, a, k: _length(a[0] if a else ()) * CHARS_PER_STEP // ITEMS_PER_STEP,
}


def _materialised(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The arguments, with a one-pass iterable given as the value (counted by `_read`) made a
    list, so that its length can be known before the filter runs."""
    if args and not isinstance(args[0], Collection):
        return (list(args[0]), *args[1:])
    return args


# What a filter or test's annotation says of its value when it goes through it item by item:
# text given to it is read a character a step (`'…'|sort`, `map`, `unique`, `max`).
_ITEM_BY_ITEM = re.compile(r"\b(Iterable|Collection|Sequence|Reversible|Container|Mapping)\b")


def _goes_item_by_item(function: Callable[..., Any], passes_context: bool) -> bool:
    parameters = list(inspect.signature(function).parameters.values())[int(passes_context) :]
    if not parameters:
        return False
    annotation = parameters[0].annotation
    return _ITEM_BY_ITEM.search(str(annotation)) is not None


def _budgeted_filter(function: Callable[..., Any], estimate: Estimate | None) -> Callable[..., Any]:
    """`function` (a filter or a test) spending, before it runs, for what it is given to read
    and what it may build (`estimate`), and after it runs, for what it built."""
    passes_context = getattr(function, "jinja_pass_arg", None) is not None
    by_item = _goes_item_by_item(function, passes_context)
    measured = estimate is not None and estimate in _MEASURED

    @functools.wraps(function)
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        passed, given = (args[:1], args[1:]) if passes_context else ((), args)
        given = _read_all(given, kwargs, value_by_item=by_item)
        if estimate is not None:
            if measured:
                given = _materialised(given)
            _spend(estimate(given, kwargs) // CHARS_PER_STEP)
        result = function(*passed, *given, **kwargs)
        _spend_on_size(result)
        budget.after_call()
        return result

    return budgeted


def _budgeted_filters(
    functions: Mapping[str, Any], estimates: Mapping[str, Estimate]
) -> dict[str, Any]:
    return {
        name: _budgeted_filter(function, estimates.get(name))
        for name, function in functions.items()
    }


def _check_product(left: Any, right: Any) -> None:
    if isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INTEGER_BITS:
            raise WorkExceeded(f"a number over {MAX_INTEGER_BITS} bits")
        return
    times, repeated = (left, right) if isinstance(left, int) else (right, left)
    if isinstance(times, int) and isinstance(repeated, str | list | tuple):
        _spend(len(repeated) * max(times, 0) // CHARS_PER_STEP)


def _check_power(base: Any, exponent: Any) -> None:
    if not (isinstance(base, int) and isinstance(exponent, int)) or exponent <= 0 or abs(base) < 2:
        return
    if exponent > MAX_INTEGER_BITS or base.bit_length() * exponent > MAX_INTEGER_BITS:
        raise WorkExceeded(f"a number over {MAX_INTEGER_BITS} bits")


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox with every loop, call and growing operation spending from the render's
    work budget. Templates must be compiled from `bounded_tree`, so their loops are counted."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.filters = _budgeted_filters(self.filters, _FILTER_ESTIMATES)
        self.tests = _budgeted_filters(self.tests, {})
        self.filters[_COUNTED] = _counted_filter
        self.filters[_SIZED] = _sized
        self.globals["range"] = _budgeted_range
        lipsum: Callable[..., str] = self.globals["lipsum"]  # type: ignore[assignment]
        self.globals["lipsum"] = _budgeted_lipsum(lipsum)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """The globals of a template as one dict, not Jinja's chain over the environment's:
        every render copies them into its context, and a chain is walked key by key. Our
        environments' globals are set once, when they are made."""
        return {**self.globals, **(d or {})}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            _check_product(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            _spend(_format_widths(left) // CHARS_PER_STEP)
        result = super().call_binop(context, operator, left, right)
        _spend_on_size(result)
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        template = value.__self__

        def budgeted(*args: Any, **kwargs: Any) -> str:
            _spend(_format_spec_widths(template) // CHARS_PER_STEP)
            return sandboxed(*args, **kwargs)

        return budgeted

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _budget()
        if isinstance(obj, Macro):
            # A macro only binds what it is given: its body spends for its own reading.
            _spend(MACRO_CALL_STEPS)
        elif isinstance(obj, LoopContext):
            _spend(1)
            args = (_counted(args[0]), *args[1:]) if args else args
        else:
            _spend(1)
            args = _read_all(args, kwargs)
        target = getattr(obj, "__self__", None)
        if isinstance(target, str):
            _read(target)
        if isinstance(target, str | list):
            args = _spend_on_method(target, getattr(obj, "__name__", ""), args, kwargs)
        before = len(target) if isinstance(target, list) else 0
        result = super().call(context, obj, *args, **kwargs)
        _spend_on_size(result)
        if isinstance(target, list):
            _spend(max(len(target) - before, 0) // ITEMS_PER_STEP)
        budget.after_call()
        return result


def _spend_on_method(
    target: str | list[Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Spends what a method of text or of a list may build, before it runs; the arguments, a
    one-pass iterable among them made a list."""
    estimates = _METHOD_ESTIMATES if isinstance(target, str) else _LIST_METHOD_ESTIMATES
    estimate = estimates.get(name)
    if estimate is None:
        return args
    if name in ("join", "extend"):
        args = _materialised(args)
    _spend(estimate(target, args, kwargs) // CHARS_PER_STEP)
    return args


class _Bounding(NodeTransformer):
    """Wraps each loop's iterable in the counting filter and each `~` concatenation in the
    measuring one."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, _COUNTED, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Filter(node, _SIZED, [], [], None, None, lineno=node.lineno)


def bounded_tree(tree: nodes.Template) -> nodes.Template:
    """`tree` with each loop's iterable counted and each `~` concatenation's result measured,
    as they run."""
    bounded: nodes.Template = _Bounding().visit(tree)
    return bounded
