"""Query-conditioned separation: the U-Net mask network (``model``), the ``Separator`` wrapper and
its model file (``separator``), query bank and mixup (``queries``), training mixtures (``data``),
the supervised loss (``losses``), the training loop shared with RL (``loop``), pair evaluation
(``evaluate``) and the DVC stage functions (``stages``). The inference API is
``marssep_core.serving.api.separate``."""
