"""The live display: ``operando view``, a read-only web app over the processor's reports
and files (the live SWMR file while a scan runs, the run's NeXus file after)."""
