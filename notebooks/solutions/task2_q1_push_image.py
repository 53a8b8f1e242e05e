import labkit

with q1.attempt():
    labkit.images.push_image(lab)
