import labkit

app = labkit.images.copy_sample_app("my-app")  # Dockerfile and index.html, to change
page = app / "index.html"
with q3.attempt():
    new_page = page.read_text().replace("Congratulations!", "Version 2 is live!")
    page.write_text(new_page)
    print(f"{page}: {len(new_page)} characters")
