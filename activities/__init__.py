"""All of tether's I/O: one module per kind of work, each activity one step of a run."""
