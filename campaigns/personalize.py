"""Personal variables in subjects and bodies: a sandboxed Django template engine.

A campaign template reaches the recipient's variables and nothing else:

- no loaders and no libraries, so nothing can include, extend or load another
  template or tag library;
- the only tags are the harmless ones below (no include, load, extends, debug,
  ssi, url, csrf_token, now, templatetag, widthratio, cycle, for, autoescape...);
- the only filters are the text filters below (no `safe`, so a value can never
  switch HTML escaping off);
- variables are plain strings and numbers, and `validate` refuses dotted lookups
  (`{{ settings.SECRET_KEY }}`, `{{ name.upper }}`), so no attribute of any
  object is ever reached.

`validate` runs when a subject or body is saved, so a syntax error shows on the
admin form and never surfaces at send time.

Size: every marketer's messages are rendered in the same workers, so no template may
grow without bound. `validate` caps the filters that take a size (ljust, rjust and
center a width, floatformat a number of decimal places); no filter may return more
than the body's limit; and `render` counts what it writes as it goes, raising
RenderedTooLarge once a subject or body passes its limit (RENDERED_SUBJECT_MAX_CHARS,
RENDERED_BODY_MAX_CHARS), before the rest is built.
"""

import functools
import re
from collections.abc import Mapping
from html import escape as html_escape
from typing import Any

from django import template
from django.conf import settings
from django.core.exceptions import ValidationError
from django.template import Context, Engine, defaultfilters, defaulttags
from django.template.base import FilterExpression, Lexer, Node, NodeList, TextNode, TokenType, Variable, VariableNode
from django.utils.safestring import SafeString

UNSUBSCRIBE_VARIABLE = "unsubscribe_url"
STANDARD_VARIABLES = ("name", "email", UNSUBSCRIBE_VARIABLE)

ALLOWED_TAGS = ("if", "with", "firstof", "comment", "spaceless", "verbatim")
ALLOWED_FILTERS = (
    "default",
    "default_if_none",
    "upper",
    "lower",
    "title",
    "capfirst",
    "truncatechars",
    "truncatewords",
    "length",
    "cut",
    "slice",
    "first",
    "last",
    "linebreaksbr",
    "linebreaks",
    "urlencode",
    "yesno",
    "floatformat",
    "add",
    "escape",
    "force_escape",
    "striptags",
    "wordcount",
    "ljust",
    "rjust",
    "center",
)

# Filters whose output grows with an argument, and the largest argument each takes.
WIDTH_FILTERS = ("ljust", "rjust", "center")
MAX_FILTER_WIDTH = 1000  # characters: a column of a plain-text layout, never more
MAX_DECIMAL_PLACES = 20  # floatformat's argument


class PersonalizationError(ValidationError):
    pass


class RenderedTooLarge(PersonalizationError):
    """A subject or body longer than its limit for this recipient."""


def _capped(filter_function):
    """The filter, refusing a result longer than a whole body may be: no chain of filters
    ({% with a=x|add:x %}{% with b=a|add:a %}...) can build a value larger than that."""

    @functools.wraps(filter_function)
    def capped(value, *args, **kwargs):
        result = filter_function(value, *args, **kwargs)
        limit = settings.RENDERED_BODY_MAX_CHARS
        if isinstance(result, str) and len(result) > limit:
            raise RenderedTooLarge(
                f"The {filter_function.__name__} filter made a value longer than {limit:,} characters "
                "(the limit of a whole body) for this recipient.",
                code="too_large",
            )
        return result

    return capped


# The whole vocabulary of the sandboxed engine.
register = template.Library()
for _tag in ALLOWED_TAGS:
    register.tag(_tag, defaulttags.register.tags[_tag])
for _filter in ALLOWED_FILTERS:
    register.filters[_filter] = _capped(defaultfilters.register.filters[_filter])

_BLOCK_TAG = re.compile(r"{%-?\s*(\w+)")
_END_TAGS = {"else", "elif", "endif", "endwith", "endcomment", "endspaceless", "endverbatim"}
_VARIABLE_NAME = re.compile(r"[^0-9A-Za-z_]+")


@functools.cache
def engine():
    sandboxed = Engine(
        dirs=[],
        app_dirs=False,
        loaders=[],
        libraries={},
        debug=False,
        autoescape=True,
        string_if_invalid="",
    )
    # Engine always prepends Django's default tags and filters to `builtins`; replace them outright.
    sandboxed.builtins = []
    sandboxed.template_builtins = [register]
    return sandboxed


def compile_template(source):
    """The compiled template, or PersonalizationError with a message for the form."""
    return _compiled(source or "")


# Compiled once per process and source: the sender renders the same subject and body for
# every recipient, and a compiled Template holds no per-render state (no {% cycle %} here).
@functools.lru_cache(maxsize=256)
def _compiled(source):
    for match in _BLOCK_TAG.finditer(source):
        tag = match.group(1)
        if tag not in ALLOWED_TAGS and tag not in _END_TAGS:
            raise PersonalizationError(
                f"The {{% {tag} %}} tag is not allowed here. Personal variables ({{{{ name }}}}, {{{{ email }}}}, "
                f"your contact columns) and {{% if %}} are.",
                code="forbidden_tag",
            )
    for token in Lexer(source).tokenize():
        if token.token_type == TokenType.TEXT and ("{{" in token.contents or "{%" in token.contents):
            opened = "{{" if "{{" in token.contents else "{%"
            raise PersonalizationError(
                f"Template error on line {token.lineno}: {opened} is never closed "
                f"({'}}' if opened == '{{' else '%}'} missing).",
                code="syntax",
            )
    try:
        compiled = engine().from_string(source)
    except template.TemplateSyntaxError as exc:
        raise PersonalizationError(f"Template error: {exc}", code="syntax") from exc
    for expression in _filter_expressions(compiled):
        for variable in _variables_of(expression):
            if len(variable.lookups) > 1:
                raise PersonalizationError(
                    f"{{{{ {variable.var} }}}} is not allowed: use a variable by its name only, "
                    "like {{ name }} or {{ City }}.",
                    code="dotted_lookup",
                )
        _check_size_arguments(expression)
    _count_what_renders(compiled)
    return compiled


def _check_size_arguments(expression):
    for func, args in expression.filters:
        name = getattr(func, "__name__", "")
        if name in WIDTH_FILTERS:
            width = _literal_integer(args, name, what=f"a width of at most {MAX_FILTER_WIDTH:,} characters")
            if width is not None and width > MAX_FILTER_WIDTH:
                raise PersonalizationError(
                    f"The {name} filter takes a width of at most {MAX_FILTER_WIDTH:,} characters; "
                    f"{width:,} is too wide.",
                    code="too_wide",
                )
        elif name == "floatformat" and args:
            places = _literal_integer(
                args, name, what=f"a number of decimal places up to {MAX_DECIMAL_PLACES}", suffixes="gu"
            )
            if places is not None and abs(places) > MAX_DECIMAL_PLACES:
                raise PersonalizationError(
                    f"The floatformat filter takes at most {MAX_DECIMAL_PLACES} decimal places; "
                    f"{abs(places):,} is too many.",
                    code="too_wide",
                )


def _literal_integer(args, name, *, what, suffixes=""):
    """The filter's one argument as a whole number (None when it has none); a variable or any other
    text is refused, so the size is known when the template is saved."""
    if not args:
        return None
    is_variable, arg = args[0]
    if is_variable and isinstance(arg, Variable) and arg.lookups:
        raise PersonalizationError(
            f"The {name} filter takes {what}, written as a number, not a variable ({arg.var}).",
            code="too_wide",
        )
    value = arg.literal if is_variable and isinstance(arg, Variable) else arg
    text = str(value).rstrip(suffixes) if suffixes else str(value)
    try:
        return int(text or -1)
    except ValueError:
        raise PersonalizationError(f"The {name} filter takes {what}, not {value!r}.", code="too_wide") from None


class _BudgetedContext(Context):
    """A render's context that counts the characters written, up to `max_chars`."""

    def __init__(self, variables, *, autoescape, max_chars, label):
        super().__init__(variables, autoescape=autoescape)
        self.remaining = max_chars
        self.max_chars = max_chars
        self.label = label

    def spend(self, chars):
        self.remaining -= chars
        if self.remaining < 0:
            raise _too_large(self.label, self.max_chars)


def _too_large(label, max_chars):
    return RenderedTooLarge(
        f"The {label} would be longer than {max_chars:,} characters for this recipient: "
        "shorten the template or this contact's values.",
        code="too_large",
    )


# Nodes whose output is their children's, already counted.
_CONTAINER_NODES = (defaulttags.IfNode, defaulttags.WithNode, defaulttags.SpacelessNode)


class _BudgetedNodeList(NodeList):
    """Renders node by node, counting each leaf's output before the next is rendered, so a
    template (or a recipient's values) can never build more than the budget's worth of text."""

    def render(self, context):
        bits = []
        for node in self:
            bit = node.render_annotated(context)
            if isinstance(context, _BudgetedContext) and not isinstance(node, _CONTAINER_NODES):
                context.spend(len(bit))
            bits.append(bit)
        return SafeString("".join(bits))


def _count_what_renders(compiled):
    """Turn every node list of a compiled template into a _BudgetedNodeList."""
    compiled.nodelist = _budgeted(compiled.nodelist)


def _budgeted(nodelist):
    counted = _BudgetedNodeList(nodelist)
    counted.contains_nontext = nodelist.contains_nontext
    for node in counted:
        if isinstance(node, defaulttags.IfNode):
            node.conditions_nodelists = [
                (condition, _budgeted(branch)) for condition, branch in node.conditions_nodelists
            ]
        elif isinstance(getattr(node, "nodelist", None), NodeList):
            node.nodelist = _budgeted(node.nodelist)
    return counted


def validate(source: str) -> None:
    """Raise PersonalizationError if `source` is not a valid sandboxed template."""
    compile_template(source)


def variables_used(source):
    """The variable names a template reads (the template must be valid)."""
    return _variables_used(source or "")


@functools.lru_cache(maxsize=256)
def _variables_used(source):
    names = set()
    for expression in _filter_expressions(compile_template(source)):
        for variable in _variables_of(expression):
            names.add(variable.lookups[0])
    return frozenset(names)


# Filters that put something in place of an empty value.
FALLBACK_FILTERS = ("default", "yesno")


def variables_without_fallback(source):
    """The variables a template prints bare: a recipient without a value gets nothing in their place.

    Not counted: one printed with a fallback ({{ City|default:"there" }}), one printed only inside
    {% if City %}, and one only tested. The template must be valid.
    """
    return _variables_without_fallback(source or "")


@functools.lru_cache(maxsize=256)
def _variables_without_fallback(source):
    return frozenset(_printed_bare(compile_template(source).nodelist, guarded=frozenset()))


def _printed_bare(nodelist, *, guarded):
    for node in nodelist:
        if isinstance(node, VariableNode):
            name = _bare_name(node)
            applied = {getattr(func, "__name__", "") for func, _args in node.filter_expression.filters}
            if name and name not in guarded and not applied & set(FALLBACK_FILTERS):
                yield name
        elif isinstance(node, defaulttags.IfNode):
            for condition, branch in node.conditions_nodelists:
                yield from _printed_bare(branch, guarded=guarded | _names_tested_true(condition))
        elif isinstance(node, defaulttags.WithNode):
            # Its names are the template's own, not the recipient's.
            yield from (
                name for name in _printed_bare(node.nodelist, guarded=guarded) if name not in node.extra_context
            )
        elif not isinstance(node, defaulttags.FirstOfNode):  # firstof is a fallback itself
            for attribute in node.child_nodelists:
                yield from _printed_bare(getattr(node, attribute, None) or [], guarded=guarded)


def _names_tested_true(condition):
    """Variables that hold a value wherever `condition` is true ({% if City %}, {% if City and Town %})."""
    if condition is None:
        return frozenset()
    if getattr(condition, "id", None) == "literal":
        variable = condition.value.var
        if isinstance(variable, Variable) and variable.lookups:
            return frozenset([variable.lookups[0]])
    if getattr(condition, "id", None) == "and":
        return _names_tested_true(condition.first) | _names_tested_true(condition.second)
    return frozenset()


def fallbacks(source):
    """{variable: the text its `default` filter puts in place of an empty value} (the template must be
    valid); a variable with a computed fallback maps to "" and one without any is absent."""
    found = {}
    for expression in _filter_expressions(compile_template(source or "")):
        if not (isinstance(expression.var, Variable) and expression.var.lookups):
            continue
        for func, args in expression.filters:
            if getattr(func, "__name__", "") in FALLBACK_FILTERS:
                literal = args[0][1] if args and not args[0][0] else ""
                found.setdefault(expression.var.lookups[0], str(literal))
    return found


def places_unsubscribe_link(source: str) -> bool:
    try:
        return UNSUBSCRIBE_VARIABLE in variables_used(source)
    except PersonalizationError:
        return False


def recipient_variables(
    *, name: str, email: str, attributes: Mapping[str, Any] | None, unsubscribe_url: str = ""
) -> dict[str, str | int | float]:
    """Variables of one recipient: every attribute as a string, then name, email and the unsubscribe URL."""
    variables = {}
    for key, value in (attributes or {}).items():
        key = str(key)
        value = _plain(value)
        variables[key] = value
        # A column "First Name" cannot be written as a variable; {{ First_Name }} can.
        identifier = _VARIABLE_NAME.sub("_", key).strip("_")
        if identifier and identifier != key:
            variables.setdefault(identifier, value)
    variables.update({"name": name or "", "email": email or "", UNSUBSCRIBE_VARIABLE: unsubscribe_url or ""})
    return variables


def render(
    source: str, variables: Mapping[str, Any], *, html: bool, max_chars: int | None = None, label: str = "body"
) -> str:
    """Render with HTML escaping of every value when `html`; raises PersonalizationError, and
    RenderedTooLarge ("The {label} would be longer...") past `max_chars` (default
    RENDERED_BODY_MAX_CHARS) before building the rest."""
    compiled = compile_template(source)
    max_chars = settings.RENDERED_BODY_MAX_CHARS if max_chars is None else max_chars
    pieces = _plain_pieces(source)
    if pieces is not None and all(type(variables.get(name, "")) is str for name in pieces[1::2]):
        return _render_plain(pieces, variables, html=html, max_chars=max_chars, label=label)
    return compiled.render(_BudgetedContext(variables, autoescape=html, max_chars=max_chars, label=label))


def _render_plain(pieces, variables, *, html, max_chars, label):
    """What Django renders for text and bare {{ variable }}s with string values (escaped, or as
    they are), a missing one as "" (string_if_invalid), at a fraction of the engine's cost (measured
    in BENCHMARKS.md, Costs behind the code): made twice for every message sent."""
    out = list(pieces)
    length = sum(len(text) for text in out[::2])
    for i in range(1, len(out), 2):
        value = variables.get(out[i], "")
        out[i] = html_escape(value) if html else value
        length += len(out[i])
        if length > max_chars:
            raise _too_large(label, max_chars)
    if length > max_chars:
        raise _too_large(label, max_chars)
    return "".join(out)


@functools.lru_cache(maxsize=256)
def _plain_pieces(source):
    """[text, name, text, name, ..., text] when the template is only text and bare {{ variable }}s
    (no tag, no filter: most subjects and bodies), else None. The source must be valid."""
    pieces = [""]
    for node in compile_template(source).nodelist:
        if isinstance(node, TextNode):
            pieces[-1] += node.s
        elif isinstance(node, VariableNode) and not node.filter_expression.filters and _bare_name(node):
            pieces += [_bare_name(node), ""]
        else:
            return None
    return pieces


def _bare_name(node):
    """The variable's name when it is read from the recipient's variables alone: not a literal,
    not dotted, not one of the names a Context answers itself (True, False, None)."""
    variable = node.filter_expression.var
    if not isinstance(variable, Variable) or not variable.lookups or len(variable.lookups) != 1:
        return None
    name = variable.lookups[0]
    return None if name in ("True", "False", "None") else name


def attribute_identifiers(keys):
    """The variable names a set of attribute keys provides (see recipient_variables)."""
    names = set()
    for key in keys:
        names.add(str(key))
        identifier = _VARIABLE_NAME.sub("_", str(key)).strip("_")
        if identifier:
            names.add(identifier)
    return names


def _plain(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return value
    return str(value)


def _filter_expressions(compiled):
    seen = set()
    for node in compiled.nodelist.get_nodes_by_type(Node):
        if isinstance(node, VariableNode):
            yield node.filter_expression
            continue
        yield from _expressions_in(vars(node), seen, depth=0)


def _expressions_in(value, seen, depth):
    if depth > 8 or id(value) in seen:
        return
    if isinstance(value, FilterExpression):
        seen.add(id(value))
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expressions_in(item, seen, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _expressions_in(item, seen, depth + 1)
    elif isinstance(value, Node) or not hasattr(value, "__dict__"):
        return  # child nodes are visited by get_nodes_by_type
    elif type(value).__module__ in ("django.template.smartif", "django.template.defaulttags"):
        seen.add(id(value))
        yield from _expressions_in(vars(value), seen, depth + 1)


def _variables_of(expression):
    if isinstance(expression.var, Variable) and expression.var.lookups:
        yield expression.var
    for _func, args in expression.filters:
        for is_variable, arg in args:
            if is_variable and isinstance(arg, Variable) and arg.lookups:
                yield arg
