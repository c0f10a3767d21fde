"""The workflow's library: a profile's grid of cells (`grid`) and the gathering of cell results into tables (`gather`)."""
