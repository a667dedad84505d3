"""Query-conditioned separation: the U-Net mask network (``model``), the ``Separator`` wrapper and
its model file (``separator``), query bank and mixup (``queries``), training mixtures (``data``),
the supervised loss (``losses``), the training loop shared with RL (``loop``), pair evaluation
(``evaluate``), the DVC stage functions (``stages``) and the inference API (``api.separate``)."""
