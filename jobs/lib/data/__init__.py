"""The data: MovieLens acquisition (`download`), the release layouts into raw tables (`layouts`), the Great
Expectations run (`validation`), raw into clean tables (`cleaning`), and drift against the live run (`drift`)."""
