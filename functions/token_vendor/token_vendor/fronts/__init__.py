"""Fronts: the HTTP front's parsing and answers, and the answer shape every caller receives."""
