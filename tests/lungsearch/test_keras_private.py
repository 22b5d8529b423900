"""lungsearch.keras_private: each private Keras name lungsearch reads is still where it was on the installed Keras.

A failure here after a Keras upgrade names the function whose docstring says
what moved and what could replace it.
"""

from __future__ import annotations

from lungsearch.keras_private import last_call_tensors


def test_last_call_tensors_are_where_a_nested_model_meets_the_enclosing_graph():
    import keras

    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(2)(inner_in), name="inner")
    x = keras.Input((4,))
    y = inner(x)
    keras.Model(x, y)
    assert last_call_tensors(inner, "output")[0] is y and y is not inner.output  # the enclosing graph's, not its own
    assert last_call_tensors(inner, "input")[0] is x
    again = keras.Input((4,))
    z = inner(again)
    assert last_call_tensors(inner, "input")[0] is again and last_call_tensors(inner, "output")[0] is z  # the last call's
    assert last_call_tensors(keras.layers.Dense(1), "output") is None  # never called
