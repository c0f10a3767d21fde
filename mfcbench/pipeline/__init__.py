"""The workflow's library: a profile's schema (`schema`), its cells (`cells`), their start-up checks
(`checks`) and summary (`summary`), seed plans (`seeds`) and the gathering of cell results into tables
(`gather`)."""
