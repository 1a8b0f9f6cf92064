"""The networks and what defines them: the face graph, landmark maps, warping, the stage-1 landmark
GCN, the
stage-2 flow-guided texture net, VGG19, and each stage's losses. Flax Linen; params are plain
pytrees."""
