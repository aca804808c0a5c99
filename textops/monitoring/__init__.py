"""monitor.py's logic, one module a job:

stream     read the data once, in chunks, into bounded counts and samples
reference  the reference profile saved with each version at training time
profile    the reference profile as read back, typed (missing parts of older ones: empty)
drift      drift statistics against that reference (no labels needed)
estimation the label-free accuracy estimate (ATC, DoC, CBPE) and its shift-aware interval
labelling  the stratified sample to label, the labels that come back (checked), the estimate
ledger     the labels ledger: every accepted labelled row, kept once, with its provenance
alerts     performance from confusion counts, alert rules, the graded verdict
slices     --slice-by: figures per value of one column from sums, the guarded slice alert
result     the typed report: MonitorReport, its performance, estimate, drift and slice parts
           (to_dict() is the JSON)
report     the one-line summary and the self-contained HTML report
runs       monitoring runs in MLflow (logging them, reading the history)
check      the whole check, step by step, as monitor.py runs it
"""
