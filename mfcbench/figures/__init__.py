"""Drawing: the paper's figures from result CSVs (`paper`) and from trained cells (`visualise`)."""
