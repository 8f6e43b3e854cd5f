"""Studies: sweeps over an executor, reports of a results database, reproductions of known results."""
