"""File formats: scenario and study files, result folders, the results database, figures."""
