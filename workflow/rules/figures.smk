# Figures drawn from the schedules and the trained cells: Figures 1, 2 and 9-15.
