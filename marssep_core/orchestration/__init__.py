"""What the Prefect flows and ``marssep orchestrate`` stand on, without importing Prefect:
logged subprocess commands, DVC experiment diffs, the batch-separation inbox, and the local
Prefect server + worker stack. ``flows/`` stays thin: it wires these into tasks."""
