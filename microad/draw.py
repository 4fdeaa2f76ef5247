"""Graphviz diagrams of a graph: the forward ops, the backward steps, or both.

:func:`draw` builds a :class:`Diagram` (a ``graphviz.Digraph``) from an
output tensor. Building it needs only the ``graphviz`` Python package: the DOT
text is in ``.source``. Rendering it to SVG, PNG or PDF needs Graphviz's
``dot`` program, and without it raises :class:`GraphvizNotFoundError`.

Layout of a diagram:

- Each tensor is a box labelled with its name, shape, dtype and kind, and,
  for tensors of at most ``max_elements`` elements, a grid of its values and
  gradient. Larger tensors show min, max, mean and the fraction of zeros.
- Each op is a small ellipse between its operands and its result, labelled
  as a call such as ``maximum(logits, 0)``. Scalar constants (Python numbers
  among an op's inputs) appear in that call, not as nodes of their own.
- Each backward step is a box labelled with its formula from the derivative
  table, such as ``dlogits = dY * (logits > 0)``.

Node ids come from the graph order (``n0``, ``n1``, ... for tensors, ``b0``,
``b1``, ... for backward steps), so the same graph always gives the same DOT
text. Every piece of user text goes into an HTML-like label after HTML
escaping, with control characters shown as ``\\n``-style escapes and
non-ASCII characters as numeric character references, so no name or value
can change the DOT syntax.
"""

from __future__ import annotations

import html
import logging
import warnings
from collections import deque
from pathlib import Path

import graphviz
import numpy as np

from .errors import DrawError, GraphvizNotFoundError
from .graph import is_tensor, label_tensors, topological_order

logger = logging.getLogger(__name__)

VIEWS = ("forward", "backward", "both")
FORMATS = ("svg", "png", "pdf", "dot")

# Ops whose backward pass multiplies the gradient by a 0/1 mask of the input:
# a zero gradient where the result's gradient is nonzero was masked there.
MASKING_OPS = frozenset({"maximum", "minimum", "where", "clip"})

# Index arrays of at most this many elements appear in op labels by value.
MAX_INDEX_ELEMENTS_SHOWN = 8

# Operands listed in an op label before the rest are counted as "+N more".
MAX_LABEL_OPERANDS = 4

# Fill and border colours. The legend draws one sample of each.
PARAMETER_STYLE = {"fillcolor": "#cfe2f3", "color": "#1c4587"}
CONSTANT_STYLE = {"fillcolor": "#eeeeee", "color": "#888888", "style": "rounded,filled,dashed"}
INTERMEDIATE_STYLE = {"fillcolor": "#ffffff", "color": "#444444"}
OP_STYLE = {"shape": "ellipse", "style": "filled", "fillcolor": "#fff2cc", "color": "#b7950b",
            "fontsize": "11", "margin": "0.05,0.02", "height": "0.3"}
STEP_STYLE = {"fillcolor": "#fce5cd", "color": "#b45f06"}
SUMMARY_STYLE = {"shape": "box", "style": "dashed", "color": "#888888", "fontcolor": "#555555"}
MASKED_CELL = "#f4cccc"
ZERO_CELL = "#e6e6e6"
ZERO_TEXT = "#888888"


def _missing_dot_error(format_name) -> GraphvizNotFoundError:
    return GraphvizNotFoundError(
        f"cannot render the diagram as {format_name}: Graphviz's dot program was not found "
        "on PATH. Install Graphviz with 'apt-get install graphviz' (Debian, Ubuntu), "
        "'brew install graphviz' (macOS) or 'conda install graphviz'. The DOT text is still "
        "available via the diagram's .source, and save(diagram, 'graph.dot') writes it")


class Diagram(graphviz.Digraph):
    """A ``graphviz.Digraph`` that raises :class:`GraphvizNotFoundError` when ``dot`` is missing.

    ``render``, ``view`` and ``pipe`` work as in graphviz. In Jupyter, a
    diagram displays as SVG. Without ``dot`` it displays the install
    instructions as text instead of a traceback.
    """

    def pipe(self, *args, **kwargs):
        try:
            return super().pipe(*args, **kwargs)
        except graphviz.ExecutableNotFound as exc:
            raise _missing_dot_error(kwargs.get("format") or self.format) from exc

    def render(self, *args, **kwargs):
        try:
            return super().render(*args, **kwargs)
        except graphviz.ExecutableNotFound as exc:
            raise _missing_dot_error(kwargs.get("format") or self.format) from exc

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except GraphvizNotFoundError as exc:
            logger.warning("diagram not rendered for display: %s", exc)
            return {"text/plain": str(exc)}


# ---------------------------------------------------------------------------
# Text: escaping and number formatting
# ---------------------------------------------------------------------------

_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def escape(text) -> str:
    """Return ``text`` safe to place inside an HTML-like Graphviz label.

    Control characters become visible escapes such as ``\\n``, markup
    characters become entities, and non-ASCII characters become numeric
    character references, so the DOT text is plain ASCII.

    >>> escape('a" <b>&{c|d}\\n')
    'a&quot; &lt;b&gt;&amp;{c|d}\\\\n'
    >>> escape("éλ")
    '&#233;&#955;'
    """
    text = str(text)
    visible = []
    for char in text:
        code = ord(char)
        if char in _CONTROL_ESCAPES:
            visible.append(_CONTROL_ESCAPES[char])
        elif code < 0x20 or 0x7F <= code < 0xA0:
            visible.append(f"\\x{code:02x}")
        else:
            visible.append(char)
    escaped = html.escape("".join(visible), quote=True)
    return escaped.encode("ascii", "xmlcharrefreplace").decode("ascii")


def format_number(value, precision=3) -> str:
    """Format one array element rounded to ``precision`` decimals, as ``np.around`` would.

    A nonzero value that rounds to zero is shown in scientific notation, so
    that only exact zeros read as ``0``.

    >>> format_number(2.5449, 3), format_number(-0.0), format_number(4e-7), format_number(True)
    ('2.545', '0', '4e-07', 'True')
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if not np.isfinite(value):
        return str(value)
    rounded = float(np.round(value, precision)) + 0.0  # + 0.0 turns -0.0 into 0.0
    if rounded == 0.0 and value != 0.0:
        return np.format_float_scientific(value, precision=max(precision - 1, 0), trim="-")
    if abs(rounded) >= 1e6:
        return np.format_float_scientific(rounded, precision=precision, trim="-")
    return np.format_float_positional(rounded, precision=precision, trim="-")


def _summary(array, precision) -> str:
    """Describe a large array by min, max, mean and the fraction of zeros."""
    if array.size == 0:
        return "empty"
    numbers = array.astype(np.float64) if array.dtype.kind == "b" else array
    zeros = np.count_nonzero(array == 0) / array.size
    parts = [
        f"min {format_number(numbers.min(), precision)}",
        f"max {format_number(numbers.max(), precision)}",
        f"mean {format_number(numbers.mean(), precision)}",
        f"zeros {zeros:.1%}",
    ]
    return escape("  ".join(parts))


# ---------------------------------------------------------------------------
# HTML-like labels
# ---------------------------------------------------------------------------

def _grid(array, precision, masked=None):
    """Return an HTML table with one cell per element, with zero and masked gradients shaded."""
    rows = array.reshape(1, -1) if array.ndim < 2 else array.reshape(-1, array.shape[-1])
    zero = None if masked is None else (rows == 0)
    masked_rows = None if masked is None else masked.reshape(rows.shape)
    lines = ['<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="2" COLOR="#bbbbbb">']
    for i in range(rows.shape[0]):
        cells = []
        for j in range(rows.shape[1]):
            text = escape(format_number(rows[i, j], precision))
            if masked_rows is not None and masked_rows[i, j]:
                cells.append(f'<TD ALIGN="RIGHT" BGCOLOR="{MASKED_CELL}">{text}</TD>')
            elif zero is not None and zero[i, j]:
                cells.append(f'<TD ALIGN="RIGHT" BGCOLOR="{ZERO_CELL}">'
                             f'<FONT COLOR="{ZERO_TEXT}">{text}</FONT></TD>')
            else:
                cells.append(f'<TD ALIGN="RIGHT">{text}</TD>')
        lines.append("<TR>" + "".join(cells) + "</TR>")
    lines.append("</TABLE>")
    return "".join(lines)


def _caption(text):
    return f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9" COLOR="#555555">{text}</FONT></TD></TR>'


def _array_rows(caption, array, precision, max_elements, masked=None):
    """Return label rows showing ``array``: a grid when small, a summary line when large."""
    if array.size <= max_elements:
        return [_caption(caption), f"<TR><TD>{_grid(array, precision, masked)}</TD></TR>"]
    line = _summary(array, precision)
    if masked is not None and masked.any():
        line += f"  masked {np.count_nonzero(masked) / masked.size:.1%}"
    return [_caption(caption), f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10">{line}</FONT></TD></TR>']


def _table(rows):
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">' + "".join(rows) + "</TABLE>>"


def _gradient_array(tensor):
    grad = tensor.grad
    if grad is None:
        return None
    array = np.asarray(grad.data if is_tensor(grad) else grad)
    return array if array.shape == tensor.shape else None


def _masked(tensor, gradient, consumers):
    """Return where ``gradient`` is zero only because a masking consumer stopped it."""
    zero = gradient == 0
    masked = np.zeros(gradient.shape, dtype=bool)
    if not zero.any():
        return masked
    for consumer in consumers.get(id(tensor), ()):
        if consumer.op not in MASKING_OPS:
            continue
        upstream = _gradient_array(consumer)
        if upstream is None or upstream.shape != gradient.shape:
            continue
        masked |= zero & (upstream != 0)
    return masked


# ---------------------------------------------------------------------------
# Arguments and the graph
# ---------------------------------------------------------------------------

def _check_arguments(y, view, precision, max_nodes, group_by, max_elements):
    if not is_tensor(y) or not hasattr(y, "data"):
        raise DrawError(f"draw() needs a microad Tensor as the output, not a {type(y).__name__}; "
                        "build the graph from Tensors, for example Tensor(W, requires_grad=True)")
    if view not in VIEWS:
        raise DrawError(f"draw(): view={view!r} is invalid; use one of {', '.join(VIEWS)}")
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) or precision < 0:
        raise DrawError(f"draw(): precision={precision!r} is invalid; pass a number of "
                        "decimals, 0 or more")
    if max_nodes is not None and (isinstance(max_nodes, bool)
                                  or not isinstance(max_nodes, (int, np.integer))
                                  or max_nodes < 1):
        raise DrawError(f"draw(): max_nodes={max_nodes!r} is invalid; pass None to show "
                        "every tensor, or a count of 1 or more")
    if group_by not in (None, "prefix"):
        raise DrawError(f"draw(): group_by={group_by!r} is invalid; use None or 'prefix'")
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, np.integer)) \
            or max_elements < 0:
        raise DrawError(f"draw(): max_elements={max_elements!r} is invalid; pass a count, "
                        "0 or more (0 shows summary statistics only)")


def _nearest_tensors(root, max_nodes):
    """Return the ids of the ``max_nodes`` tensors fewest ops away from ``root``, breadth first."""
    kept = {id(root)}
    queue = deque([root])
    while queue and len(kept) < max_nodes:
        tensor = queue.popleft()
        for operand in tensor.inputs:
            if len(kept) >= max_nodes:
                break
            if is_tensor(operand) and id(operand) not in kept:
                kept.add(id(operand))
                queue.append(operand)
    return kept


def _consumers(order):
    """Map each tensor's id to the tensors whose op read it."""
    result = {}
    for tensor in order:
        for operand in tensor.inputs:
            if is_tensor(operand):
                result.setdefault(id(operand), []).append(tensor)
    return result


def _group_of(label):
    """Return the text before the first '.' or '/' in ``label``, or None."""
    cut = min((i for i in (label.find("."), label.find("/")) if i > 0), default=-1)
    return label[:cut] if cut > 0 else None


class _Layout:
    """Nodes of one diagram, each sent to the root graph or to its prefix cluster."""

    def __init__(self, diagram, group_by):
        self.diagram = diagram
        self.group_by = group_by
        self.clusters = {}

    def node(self, node_id, label, group=None, **attrs):
        target = self.diagram
        if self.group_by == "prefix" and group is not None:
            target = self.clusters.get(group)
            if target is None:
                target = graphviz.Digraph(name=f"cluster_{len(self.clusters)}")
                target.attr(label=f"<{escape(group)}>", style="rounded", color="#999999",
                            fontcolor="#555555")
                self.clusters[group] = target
        target.node(node_id, label, **attrs)

    def finish(self):
        for cluster in self.clusters.values():
            self.diagram.subgraph(cluster)


# ---------------------------------------------------------------------------
# The forward view
# ---------------------------------------------------------------------------

def _kind(tensor):
    if tensor._node is not None:
        return "intermediate"
    return "parameter" if tensor.requires_grad else "constant"


_KIND_STYLES = {"parameter": PARAMETER_STYLE, "constant": CONSTANT_STYLE,
                "intermediate": INTERMEDIATE_STYLE}


def _tensor_label(tensor, label, kind, options, consumers):
    precision, max_elements = options["precision"], options["max_elements"]
    dtype = escape(str(tensor.dtype))
    rows = [f"<TR><TD><B>{escape(label)}</B></TD></TR>",
            f'<TR><TD><FONT POINT-SIZE="10">{escape(tensor.shape)} {dtype} &#183; {kind}'
            "</FONT></TD></TR>"]
    if options["values"]:
        rows += _array_rows("value", np.asarray(tensor.data), precision, max_elements)
    if options["grads"]:
        gradient = _gradient_array(tensor)
        if gradient is not None:
            masked = _masked(tensor, gradient, consumers)
            rows += _array_rows("grad", gradient, precision, max_elements, masked)
    return _table(rows)


def _format_index(index):
    parts = index if isinstance(index, tuple) else (index,)
    shown = []
    for part in parts:
        if isinstance(part, slice):
            bounds = [part.start, part.stop] if part.step is None else [part.start, part.stop,
                                                                        part.step]
            shown.append(":".join("" if bound is None else str(bound) for bound in bounds))
        elif part is Ellipsis:
            shown.append("...")
        elif part is None:
            shown.append("None")
        elif isinstance(part, np.ndarray) or isinstance(part, list):
            array = np.asarray(part)
            if array.size <= MAX_INDEX_ELEMENTS_SHOWN and array.ndim == 1:
                shown.append(np.array2string(array, separator=","))  # such as [0,1,2,2,1]
            else:
                shown.append(f"<{array.dtype} array {array.shape}>")
        else:
            shown.append(repr(part))
    return ", ".join(shown)


def _format_param(value):
    if isinstance(value, np.ndarray):
        return f"<{value.dtype} array {value.shape}>"
    if isinstance(value, np.dtype):
        return str(value)
    text = repr(value)
    return text if len(text) <= 30 else text[:29] + "..."


def _op_label(tensor, labels):
    """Return the op as a call: ``maximum(logits, 0)``, ``sum(t0, axis=(1,))``, ``X[:, 0]``."""
    node = tensor._node
    operands = []
    for operand in node.inputs:
        if is_tensor(operand):
            operands.append(labels[id(operand)])
        else:
            operands.append(format_number(operand, 6))
    if tensor.op == "getitem":
        return f"{operands[0]}[{_format_index(node.params.get('index'))}]"
    if len(operands) > MAX_LABEL_OPERANDS:
        hidden = len(operands) - (MAX_LABEL_OPERANDS - 1)
        operands = operands[:MAX_LABEL_OPERANDS - 1] + [f"+{hidden} more"]
    for key in sorted(node.params):
        value = node.params[key]
        if value is None or value is False:
            continue
        operands.append(f"{key}={_format_param(value)}")
    return f"{tensor.op}({', '.join(operands)})"


def _draw_forward(diagram, layout, root, order, labels, ids, shown, options):
    consumers = _consumers(order) if options["grads"] else {}
    hidden_feeds = []
    for tensor in order:
        if id(tensor) not in shown:
            continue
        node_id = ids[id(tensor)]
        label = labels[id(tensor)]
        group = _group_of(label)
        kind = _kind(tensor)
        attrs = {"shape": "box", "style": "rounded,filled", **_KIND_STYLES[kind]}
        if tensor is root:
            attrs["peripheries"] = "2"
        layout.node(node_id, _tensor_label(tensor, label, kind, options, consumers), group, **attrs)

        if tensor._node is None:
            continue
        op_id = f"{node_id}_op"
        layout.node(op_id, f"<{escape(_op_label(tensor, labels))}>", group, **OP_STYLE)
        diagram.edge(op_id, node_id)
        hides_input = False
        for operand in tensor.inputs:
            if not is_tensor(operand):
                continue
            if id(operand) in shown:
                diagram.edge(ids[id(operand)], op_id)
            else:
                hides_input = True
        if hides_input:
            hidden_feeds.append(op_id)
    return hidden_feeds


def _draw_summary(diagram, node_id, count, noun, feeds):
    diagram.node(node_id, f"<+{count:,} more {noun}>", **SUMMARY_STYLE)
    for target in feeds:
        diagram.edge(node_id, target, style="dashed", color="#888888")


# ---------------------------------------------------------------------------
# The backward view
# ---------------------------------------------------------------------------

def _derive(root, names):
    try:
        from .explain import derive
    except ImportError as exc:
        raise DrawError("the backward view needs microad.explain.derive, which this "
                        "installation does not provide; draw with view='forward'") from exc
    return derive(root, names)


def _step_label(step, options, consumers, show_gradient):
    rows = [f"<TR><TD><B>{escape(step.target)} = {escape(step.expression)}</B></TD></TR>",
            f'<TR><TD><FONT POINT-SIZE="10">{escape(tuple(step.shape))} &#183; '
            f"from {escape(step.primitive)}</FONT></TD></TR>"]
    tensor = step.tensor
    if show_gradient and options["grads"] and tensor is not None:
        gradient = _gradient_array(tensor)
        if gradient is not None:
            masked = _masked(tensor, gradient, consumers)
            rows += _array_rows("value", gradient, options["precision"], options["max_elements"],
                                masked)
    return _table(rows)


def _draw_backward(diagram, layout, steps, labels, ids, shown, order, options, forward_drawn):
    """Add one node per backward step, linked to the gradients and forward arrays it reads."""
    consumers = _consumers(order) if options["grads"] else {}
    by_label = {}
    for tensor in order:
        by_label.setdefault(labels[id(tensor)], tensor)

    producer = {}    # gradient name -> id of the latest step that assigned it
    references = {}  # forward or unknown name -> node id drawn for it in this view
    for index, step in enumerate(steps):
        step_id = f"b{index}"
        tensor = step.tensor
        group = None if tensor is None else _group_of(labels.get(id(tensor), ""))
        attrs = {"shape": "box", "style": "rounded,filled", **STEP_STYLE}
        # In the "both" view the tensor's node already shows this gradient.
        paired = forward_drawn and tensor is not None and id(tensor) in shown
        layout.node(step_id, _step_label(step, options, consumers, not paired), group, **attrs)

        for name in dict.fromkeys(step.reads):
            if name in producer:
                diagram.edge(producer[name], step_id, color="#b45f06")
                continue
            source = by_label.get(name)
            if forward_drawn and source is not None and id(source) in shown:
                diagram.edge(ids[id(source)], step_id, style="dashed", color="#888888")
                continue
            reference = references.get(name)
            if reference is None:
                reference = f"r{len(references)}"
                references[name] = reference
                diagram.node(reference, f"<{escape(name)}>", shape="box",
                             style="rounded,filled,dashed", fillcolor="#ffffff", color="#888888",
                             fontsize="11")
            diagram.edge(reference, step_id, style="dashed", color="#888888")

        if paired:
            diagram.edge(step_id, ids[id(tensor)], style="dotted", color="#b45f06",
                         arrowhead="none", constraint="false")
            if layout.group_by is None:
                # Same rank as its tensor: the backward graph mirrors the forward one.
                with diagram.subgraph() as row:
                    row.attr(rank="same")
                    row.node(ids[id(tensor)])
                    row.node(step_id)
        producer[step.target] = step_id


# ---------------------------------------------------------------------------
# Legend
# ---------------------------------------------------------------------------

def _legend_row(sample, text, fill, border, double=False):
    cell = f'<TD BGCOLOR="{fill}" COLOR="{border}" BORDER="{2 if double else 1}">{sample}</TD>'
    return f'<TR>{cell}<TD ALIGN="LEFT">{escape(text)}</TD></TR>'


def _draw_legend(diagram, view):
    """Add the legend: one table node with a sample of each style that the view uses."""
    rows = ['<TR><TD COLSPAN="2"><B>legend</B></TD></TR>']
    if view != "backward":
        rows += [
            _legend_row("W", "parameter: leaf with requires_grad",
                        PARAMETER_STYLE["fillcolor"], PARAMETER_STYLE["color"]),
            _legend_row("X", "constant: no gradient (dashed border)",
                        CONSTANT_STYLE["fillcolor"], CONSTANT_STYLE["color"]),
            _legend_row("t0", "intermediate: result of an op",
                        INTERMEDIATE_STYLE["fillcolor"], INTERMEDIATE_STYLE["color"]),
            _legend_row("loss", "output (double border)",
                        INTERMEDIATE_STYLE["fillcolor"], INTERMEDIATE_STYLE["color"], double=True),
            _legend_row("op", "op(operands, scalar constants, params)",
                        OP_STYLE["fillcolor"], OP_STYLE["color"]),
        ]
    if view != "forward":
        rows.append(_legend_row("dx", "backward step: dx = formula",
                                STEP_STYLE["fillcolor"], STEP_STYLE["color"]))
    rows += [
        _legend_row("0", "gradient zero where a mask (ReLU) stopped it", MASKED_CELL, "#bbbbbb"),
        _legend_row(f'<FONT COLOR="{ZERO_TEXT}">0</FONT>', "zero gradient", ZERO_CELL, "#bbbbbb"),
    ]
    label = ('<<TABLE BORDER="1" COLOR="#bbbbbb" CELLBORDER="0" CELLSPACING="3" CELLPADDING="3">'
             + "".join(rows) + "</TABLE>>")
    diagram.node("legend", label, shape="plain", fontsize="10")


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

def draw(y, names=None, *, view="forward", values=True, grads=True, precision=3,
         max_nodes=None, group_by=None, legend=True, max_elements=12) -> Diagram:
    """Build a Graphviz diagram of the graph that computes ``y``.

    ``names`` maps variable names to tensors (``locals()`` works) and labels
    them. ``view`` is ``"forward"`` (tensors and ops), ``"backward"`` (one
    node per gradient step, labelled with its formula) or ``"both"``.
    Tensors of at most ``max_elements`` elements show their values and
    gradients rounded to ``precision`` decimals. The gradient is ``.grad`` as
    the latest ``backward()`` left it. Larger tensors show summary statistics.
    ``max_nodes`` keeps that many tensors, the ones fewest ops away from
    ``y``, and replaces the rest by one summary node. ``group_by="prefix"``
    puts tensors whose names share the text before the first ``.`` or ``/``
    in one cluster.

    The result's ``.source`` is the DOT text; ``.render()``, ``.pipe()`` and
    :func:`save` need Graphviz's ``dot`` program.

    >>> import numpy as np
    >>> import microad as ma
    >>> W = ma.Tensor([[1.0, -2.0]], requires_grad=True, name="W")
    >>> Y = np.maximum(W, 0)
    >>> Y.backward(np.ones((1, 2)))
    >>> diagram = ma.draw(Y, legend=False)
    >>> print(diagram.source.count("->"), "maximum(W, 0)" in diagram.source)
    2 True
    """
    _check_arguments(y, view, precision, max_nodes, group_by, max_elements)
    options = {"values": values, "grads": grads, "precision": int(precision),
               "max_elements": int(max_elements)}

    order = topological_order(y, grad_only=False)
    labels = label_tensors(order, names)
    ids = {id(tensor): f"n{index}" for index, tensor in enumerate(order)}
    if max_nodes is None or len(order) <= max_nodes:
        shown = set(ids)
    else:
        shown = _nearest_tensors(y, int(max_nodes))
    logger.debug("drawing %d of %d tensors, view %s", len(shown), len(order), view)

    diagram = Diagram(name="microad", format="svg")
    diagram.attr(rankdir="TB", fontname="Helvetica", nodesep="0.25", ranksep="0.3")
    diagram.attr("node", fontname="Helvetica", fontsize="11", margin="0.08,0.04")
    diagram.attr("edge", color="#444444", arrowsize="0.7")
    layout = _Layout(diagram, group_by)

    if view != "backward":
        feeds = _draw_forward(diagram, layout, y, order, labels, ids, shown, options)
        if len(shown) < len(order):
            _draw_summary(diagram, "more_tensors", len(order) - len(shown), "tensors", feeds)

    if view != "forward":
        steps = list(_derive(y, names).steps)
        cap = len(steps) if max_nodes is None else int(max_nodes)
        _draw_backward(diagram, layout, steps[:cap], labels, ids, shown, order, options,
                       forward_drawn=view == "both")
        if len(steps) > cap:
            last = [f"b{cap - 1}"] if cap > 0 else []
            _draw_summary(diagram, "more_steps", len(steps) - cap, "gradient steps", last)

    layout.finish()
    if legend:
        _draw_legend(diagram, view)
    return diagram


def save(graph, path) -> Path:
    """Write ``graph`` to ``path`` in the format its extension names: .svg, .png, .pdf or .dot.

    A .dot file is the DOT text and needs no Graphviz install. The others run
    ``dot`` and raise :class:`GraphvizNotFoundError` when it is missing.

    >>> import tempfile, microad as ma
    >>> from microad.draw import save
    >>> x = ma.Tensor([1.0], requires_grad=True, name="x")
    >>> path = save(ma.draw(x * 2), tempfile.mkdtemp() + "/x.dot")
    >>> path.read_text().startswith("digraph microad")
    True
    """
    path = Path(path)
    format_name = _format_of(path)
    if format_name == "dot":
        path.write_text(graph.source, encoding="utf-8")
        return path
    try:
        data = graph.pipe(format=format_name)
    except graphviz.ExecutableNotFound as exc:
        raise _missing_dot_error(format_name) from exc
    except graphviz.CalledProcessError as exc:
        stderr = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise DrawError(f"Graphviz's dot failed to render {path}: {stderr or exc}; "
                        "save the DOT text as a .dot file to inspect it") from exc
    path.write_bytes(data)
    return path


def _format_of(path) -> str:
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix == "gv":
        return "dot"
    if suffix not in FORMATS:
        raise DrawError(f"output file {str(path)!r} has an unsupported extension; "
                        f"use one of {', '.join('.' + name for name in FORMATS)}")
    return suffix


def _compute_gradients(graph_file):
    """Run backward from the graph file's output so that the diagram can show gradients."""
    output = graph_file.output
    if not output.requires_grad:
        warnings.warn(f"{graph_file.path}: {graph_file.output_name!r} does not require grad, "
                      "so the diagram shows no gradients; create the inputs with "
                      "requires_grad=True to see them", stacklevel=3)
        return
    if graph_file.gradient is None and output.size != 1:
        warnings.warn(f"{graph_file.path}: {graph_file.output_name!r} has shape {output.shape} "
                      "and the file defines no 'gradient' of that shape, so the diagram shows "
                      "no gradients", stacklevel=3)
        return

    # Clear what the file's own backward() calls stored, so that every .grad
    # shown is this call's gradient, not a sum over calls.
    for tensor in topological_order(output):
        tensor.grad = None
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"backward\(\) was already called")
        output.backward(graph_file.gradient)


def run_draw(args) -> int:
    """Draw a graph file for ``microad draw FILE -o OUT [--view V] [--tensor NAME]``."""
    from .script import load_graph_file

    _format_of(args.out)
    graph_file = load_graph_file(args.file, args.output_name)
    _compute_gradients(graph_file)
    diagram = draw(graph_file.output, graph_file.namespace, view=args.view)
    path = save(diagram, args.out)
    logger.info("wrote %s", path)
    return 0
