"""Course data: toy distributions, rendered digits, moving digits, bouncing shapes, the learner's own videos."""
