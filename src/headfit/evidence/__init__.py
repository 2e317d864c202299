"""Live evidence: what the live objects say about a failure, by domain.

``layer.layer_evidence`` reads the one module a forward failed in against the shapes that reached it
(``enrich`` calls it for ``check`` and the live hooks alike). The finders read the values in the frames
of a failed program: each is one function registered with ``@finder(code=...)`` (the idiom of the
explain rules' ``@rule``, with a priority), and ``data_evidence`` asks them all. Importing this
package registers them.
"""

from __future__ import annotations

from headfit.evidence import checkpoint, embedding, layout, loader, loss, producer, spatial, targets  # noqa: F401  (registers)
from headfit.evidence.base import LiveEvidence, data_evidence, finder
from headfit.evidence.checkpoint import name_the_state_dict

__all__ = ["LiveEvidence", "data_evidence", "finder", "name_the_state_dict"]
