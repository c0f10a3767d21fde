# Experiments beyond the trained tables: SAM with MFCs (Table 9, Figure 6), DDPM (Figure 8).
