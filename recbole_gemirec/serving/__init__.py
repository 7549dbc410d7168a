"""Serving a trained model: a faiss item index plus each user's interest cache and query vectors.

    python -m recbole_gemirec.serving export --checkpoint saved/GemiRec-...-joint.pth --out serve/
    python -m recbole_gemirec.serving recommend --index serve/ --user 196 -n 20 [--json]

From Python::

    from recbole_gemirec.serving import export_model, Recommender
    export_model("saved/GemiRec-...-joint.pth", "serve/")                 # exact inner-product index
    export_model(ckpt, "serve-hnsw/", index_type="hnsw", index_params={"M": 32, "ef_search": 128})
    rec = Recommender.load("serve/")
    rec.recommend("196", n=20)            # one user -> Recommendation(items, scores, interest slots/codes)
    rec.recommend(["196", "186"], n=20)   # a batch -> list of Recommendation

See ``docs/serving.md``; the export format is described in :mod:`recbole_gemirec.serving.export`.
"""

from recbole_gemirec.serving.export import FORMAT, export_model, user_histories
from recbole_gemirec.serving.index import INDEX_TYPES, build_index, recall_at
from recbole_gemirec.serving.recommender import Recommendation, Recommender, UnknownTokenError, merge_interest_lists

__all__ = [
    "FORMAT", "export_model", "user_histories", "INDEX_TYPES", "build_index", "recall_at",
    "Recommendation", "Recommender", "UnknownTokenError", "merge_interest_lists",
]
