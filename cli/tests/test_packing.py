"""What of code/ is packed into sourcedir.tar.gz: code only, the same bytes for the same code. The
images take the same files through .dockerignore (tests/test_ship.py builds one and compares)."""

import tarfile

from rsagemaker_cli.core.opt_ml import pack_sourcedir, packed

# A code/ folder with what people keep beside their code: secrets, session files, caches, renv.
PLANTED_CODE = {
    ".env": "AWS_SECRET_ACCESS_KEY=planted\n",
    ".Renviron": "GITHUB_PAT=planted\n",
    ".Rprofile": 'source("renv/activate.R")\n',
    ".Rhistory": "q()\n",
    ".git/config": "[core]\n",
    "R/.secret": "planted\n",
    "R/helpers.R": "helper <- function() 1\n",
    "R/__pycache__/x.pyc": "\0",
    "build/cache.R": "x <- 1\n",
    "renv/activate.R": "# renv\n",
    "renv/settings.json": "{}\n",
    "renv/library/R-4.2/x86_64/pkg/DESCRIPTION": "Package: pkg\n",
    "old-model.tar.gz": "not code\n",
    "train.R": "cat('train')\n",
}
PACKED_CODE = {
    ".Rprofile",
    "R/helpers.R",
    "build/cache.R",
    "renv/activate.R",
    "renv/settings.json",
    "train.R",
}


def plant(folder):
    for relative, text in PLANTED_CODE.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_sourcedir_holds_the_code_and_no_dotfiles_caches_or_archives(tmp_path):
    code = tmp_path / "code"
    plant(code)
    members = pack_sourcedir(code, tmp_path / "sourcedir.tar.gz")
    assert set(members) == PACKED_CODE
    assert {relative for relative in PLANTED_CODE if packed(relative)} == PACKED_CODE
    with tarfile.open(tmp_path / "sourcedir.tar.gz") as archive:
        assert sorted(archive.getnames()) == sorted(PACKED_CODE)
        assert all(member.mtime == 0 and member.uid == 0 for member in archive.getmembers())


def test_the_same_code_gives_the_same_bytes(tmp_path):
    code = tmp_path / "code"
    plant(code)
    pack_sourcedir(code, tmp_path / "a.tar.gz")
    (code / "train.R").touch()  # a new modification time changes nothing
    pack_sourcedir(code, tmp_path / "b.tar.gz")
    assert (tmp_path / "a.tar.gz").read_bytes() == (tmp_path / "b.tar.gz").read_bytes()


def test_a_tarball_inside_the_code_folder_is_not_packed_into_itself(tmp_path):
    code = tmp_path / "code"
    plant(code)
    members = pack_sourcedir(code, code / "sourcedir.tar")
    assert "sourcedir.tar" not in members
