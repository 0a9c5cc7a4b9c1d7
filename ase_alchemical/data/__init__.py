"""Data sets and reference labels: the elpasolites (:mod:`.datasets`), structure files
with their labels, splits, and GFN1-xTB labels computed with tblite
(:mod:`.reference_labels`)."""
