"""Feature extraction from raw images and texts with ``transformers`` models.

The optional extra ``pip install 'nrchbench[features]'`` provides ``transformers`` and
Pillow; they are imported only when an extraction runs. See :func:`extract_features`.
"""

from __future__ import annotations

from nrchbench.features.extract import ExtractResult, extract_features
from nrchbench.features.inputs import list_images, read_texts
from nrchbench.features.labels import read_labels

__all__ = ["ExtractResult", "extract_features", "list_images", "read_labels", "read_texts"]
