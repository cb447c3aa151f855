#!/usr/bin/env python3
"""Fetch the training code named by sagemaker_submit_directory into the code directory.

usage: fetch_code.py SOURCE CODE_DIR

SOURCE is an s3:// URI, a file:// URI or a local path, naming a sourcedir.tar.gz or a directory.
S3 goes through boto3 with the container's credentials; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
point it elsewhere (older boto3 releases ignore those variables, so they are read here).
Tarballs are extracted into a staging folder, member by member, safe by construction: absolute
paths, '..', devices and FIFOs are refused before anything is written; no member is written through a
link (a member whose path goes through a symbolic link is refused); a hard link must name a file of
the archive; every symbolic link of the result must resolve inside it, wherever it is moved. A folder
source is copied with its links, which must resolve inside it too (no device, FIFO or socket either).
Each refusal names the member.
Only then does the code directory get emptied and filled, so extracted code never mixes with files
from an earlier run and a refused archive leaves it as it was.
On failure the last line on stderr is the reason, and the exit code is 1.
"""

import os
import posixpath
import shutil
import stat
import sys
import tarfile
import tempfile
import zlib
from urllib.parse import unquote, urlparse


class FetchError(Exception):
    pass


def download_s3(uri, dest_file):
    import boto3
    import botocore.exceptions

    parsed = urlparse(uri)
    bucket, key = parsed.netloc, parsed.path.lstrip("/")
    if not bucket or not key:
        raise FetchError(f"{uri} is not an s3://bucket/key URI")
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name=region)
    print(f"Downloading {uri}" + (f" from {endpoint}" if endpoint else ""), flush=True)
    try:
        s3.download_file(bucket, key, dest_file)
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NoSuchBucket"):
            raise FetchError(f"{uri} does not exist (bucket or key not found: {code})") from None
        raise FetchError(f"cannot download {uri}: {error}") from None
    except botocore.exceptions.BotoCoreError as error:
        raise FetchError(f"cannot download {uri}: {error}") from None


def local_path(source):
    if source.startswith("file://"):
        return unquote(urlparse(source).path)
    return source


def check_name(member):
    """Refuse, before anything is written, a member whose name or type is unsafe by itself."""
    name = member.name
    if name.startswith("/") or posixpath.isabs(name):
        raise FetchError(f"unsafe member {name!r}: absolute path")
    if ".." in name.split("/"):
        raise FetchError(f"unsafe member {name!r}: path leaves the code directory")
    if member.isdev() or member.isfifo():
        raise FetchError(f"unsafe member {name!r}: device or FIFO")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise FetchError(f"unsafe member {name!r}: unsupported type")
    if (member.issym() or member.islnk()) and (
        member.linkname.startswith("/") or not member.linkname.strip("/")
    ):
        raise FetchError(f"unsafe member {name!r}: link to {member.linkname!r} leaves the code directory")
    if member.islnk() and ".." in member.linkname.split("/"):
        raise FetchError(
            f"unsafe member {name!r}: hard link to {member.linkname!r} leaves the code directory"
        )


def real_path(root, name, member):
    """The path of archive name `name` under root, its folders created, never through a link.

    Each existing component is looked at with lstat: a symbolic link on the way is refused, so no
    write can be redirected, however the links in the tree so far were chained."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    path = root
    for part in parts[:-1]:
        path = os.path.join(path, part)
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            os.mkdir(path, 0o755)
            continue
        if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
            kind = "symbolic link" if stat.S_ISLNK(mode) else "file"
            raise FetchError(
                f"unsafe member {member.name!r}: its path goes through the {kind} "
                f"{os.path.relpath(path, root)!r}"
            )
    return os.path.join(path, parts[-1]) if parts else root


def clear_place(path, member):
    """Make room for a member: a later member replaces an earlier file or link, never a folder."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise FetchError(f"unsafe member {member.name!r}: it would replace a folder")
    os.unlink(path)  # the link itself, never what it points to


def resolve_inside(root, name):
    """Where `name` (a path relative to root) leads with root taken for '/': its components, every
    symbolic link on the way followed as the kernel would; None when it leaves root (a '..' above
    it, an absolute link) or loops. What it finds does not depend on where root lies, so a link that
    resolves inside the staging folder resolves the same way once moved into the code folder (a
    link that climbed out by the staging folder's name, 'x -> ../staging/...', did not)."""
    todo = name.split("/")
    parts = []
    followed = 0
    while todo:
        part = todo.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        path = os.path.join(root, *parts, part)
        if os.path.islink(path):
            followed += 1
            target = os.readlink(path)
            if followed > 40 or target.startswith("/"):
                return None
            todo = target.split("/") + todo
            continue
        parts.append(part)
    return parts


def extract_member(archive, member, root):
    path = real_path(root, member.name, member)
    if member.isdir():
        if path != root and not os.path.isdir(path):
            clear_place(path, member)
            os.mkdir(path, 0o755)
        return
    clear_place(path, member)
    if member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        # A hard link names an earlier member: a regular file reached without following links.
        source = real_path(root, member.linkname, member)
        if not os.path.lexists(source) or not stat.S_ISREG(os.lstat(source).st_mode):
            raise FetchError(
                f"unsafe member {member.name!r}: hard link to {member.linkname!r}, which is no file of the archive"
            )
        os.link(source, path, follow_symlinks=False)
    else:
        # O_NOFOLLOW | O_EXCL: the place was just cleared; nothing may have put a link there.
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        # Ownership and odd modes from the archive are not wanted in the container.
        mode = (member.mode & 0o755) | 0o600
        descriptor = os.open(path, flags, mode)
        os.fchmod(descriptor, mode)  # as the archive says, whatever the umask
        with os.fdopen(descriptor, "wb") as out, archive.extractfile(member) as data:
            shutil.copyfileobj(data, out)
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


def check_links(root, kind="member"):
    """Every symbolic link of the finished tree must resolve inside it, wherever the tree is moved
    (resolve_inside; a later link can redirect an earlier one, so this is done on the whole tree,
    after the last member)."""
    for folder, dirs, files in os.walk(root):
        for entry in dirs + files:
            path = os.path.join(folder, entry)
            name = os.path.relpath(path, root)
            if os.path.islink(path) and resolve_inside(root, name) is None:
                raise FetchError(
                    f"unsafe {kind} {name!r}: symbolic link to {os.readlink(path)!r} leaves the code directory"
                )


def extract_tarball(tarball, staging):
    """Extract member by member, safe by construction on every Python (3.11.2, the bookworm base's,
    has no extraction filters): names and types are checked first, then each member is written
    without following any link, then every link of the result is checked."""
    root = os.path.realpath(staging)
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = archive.getmembers()
            for member in members:
                check_name(member)
            for member in members:
                extract_member(archive, member, root)
            check_links(root)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise FetchError(f"{tarball} is not a readable tar archive: {error}") from None
    except OSError as error:
        raise FetchError(f"cannot extract {tarball}: {error}") from None


def copy_directory(source, staging):
    """A folder source (file:// or a path): copied with its links as links, then checked as an
    archive is: no device, FIFO or socket (refused before anything is copied), and every link
    resolving inside the copy (a 'passwd -> /etc/passwd' or 'up -> ../../..' is refused, so it
    never reaches the code folder, nor /opt/ml/model/code after it)."""
    for folder, dirs, files in os.walk(source):
        for entry in dirs + files:
            path = os.path.join(folder, entry)
            mode = os.lstat(path).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
                name = os.path.relpath(path, source)
                raise FetchError(f"unsafe entry {name!r}: device, FIFO or socket")
    try:
        shutil.copytree(source, staging, symlinks=True)
    except (OSError, shutil.Error) as error:
        raise FetchError(f"cannot copy {source}: {error}") from None
    check_links(os.path.realpath(staging), "entry")


def replace_contents(code_dir, staging):
    """Empty code_dir (it may be a mount point, so it is kept) and move staging's entries into it."""
    os.makedirs(code_dir, exist_ok=True)
    for entry in os.listdir(code_dir):
        path = os.path.join(code_dir, entry)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    for entry in os.listdir(staging):
        shutil.move(os.path.join(staging, entry), os.path.join(code_dir, entry))


def fetch(source, code_dir):
    code_dir = os.path.abspath(code_dir)
    parent = os.path.dirname(code_dir)
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".code-", dir=parent) as work:
        staging = os.path.join(work, "staging")
        os.mkdir(staging)
        if source.startswith("s3://"):
            tarball = os.path.join(work, "sourcedir.tar.gz")
            download_s3(source, tarball)
            extract_tarball(tarball, staging)
        else:
            path = os.path.abspath(local_path(source))
            if os.path.isdir(path):
                if os.path.realpath(path) == os.path.realpath(code_dir):
                    print(f"Code already in place at {code_dir}", flush=True)
                    return
                shutil.rmtree(staging)
                copy_directory(path, staging)
            elif os.path.isfile(path):
                extract_tarball(path, staging)
            else:
                raise FetchError(f"{source} does not exist")
        replace_contents(code_dir, staging)
    print(f"Code from {source} unpacked into {code_dir}", flush=True)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        fetch(argv[1], argv[2])
    except FetchError as error:
        # One line: the caller puts the last line of the output into /opt/ml/output/failure.
        print(str(error).replace("\n", " "), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
