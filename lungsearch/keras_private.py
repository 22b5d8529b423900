"""The private parts of Keras that lungsearch relies on, each behind one function here.

Keras may move a private name in any release without notice. Keeping every use
in this module means a new version breaks in one place, and
``tests/lungsearch/test_keras_private.py`` says which name moved the moment
the new version is installed, instead of ``predict --gradcam`` failing on a
user's X-ray. Each function says the version it was checked on and what public
API would replace it. It lives in ``lungsearch`` because Grad-CAM, its one
user, does; nothing else in the project reaches into Keras's private names.
"""

from __future__ import annotations

CHECKED_ON = "3.15.1"  # the Keras version every name below was read against


def last_call_tensors(layer, which: str):
    """The ``which`` (``"input"`` or ``"output"``) tensors of ``layer``'s last call in a functional graph; None if never called.

    A nested model's ``layer.output`` is its own inner tensor; the tensor
    where it meets the enclosing graph is on the node of its call there.
    Checked on Keras 3.15.1: ``Operation._inbound_nodes`` (one ``Node`` per
    call, the last appended last) and ``Node.input_tensors`` /
    ``Node.output_tensors``. Public replacement: none in Keras 3
    (``get_output_at(i)`` of Keras 2 is gone; ``layer.output`` is the first
    call's); rebuilding the model with ``keras.Model(model.inputs, ...)``
    from the layer's own inputs would avoid it.
    """
    nodes = layer._inbound_nodes
    if not nodes:
        return None
    return nodes[-1].output_tensors if which == "output" else nodes[-1].input_tensors
