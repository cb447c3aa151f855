#!/usr/bin/env python3
"""Fetch the training code named by sagemaker_submit_directory into the code directory.

usage: fetch_code.py SOURCE CODE_DIR

SOURCE is an s3:// URI, a file:// URI or a local path, naming a sourcedir.tar.gz or a directory.
S3 goes through boto3 with the container's credentials; AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL
point it elsewhere (older boto3 releases ignore those variables, so they are read here).
Tarballs are checked member by member before anything is written: absolute paths, '..', devices,
FIFOs and links that leave the code directory are refused, naming the member. The code directory is
emptied first so extracted code never mixes with files from an earlier run.
On failure the last line on stderr is the reason, and the exit code is 1.
"""

import os
import posixpath
import shutil
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


def check_member(member, root):
    """Refuse a tar member that would write outside root or create something other than files/dirs/links."""
    name = member.name
    target = posixpath.normpath(posixpath.join(root, name))
    if name.startswith("/") or posixpath.isabs(name):
        raise FetchError(f"unsafe member {name!r}: absolute path")
    if ".." in name.split("/") or not (target == root or target.startswith(root + "/")):
        raise FetchError(f"unsafe member {name!r}: path leaves the code directory")
    if member.isdev() or member.isfifo():
        raise FetchError(f"unsafe member {name!r}: device or FIFO")
    if member.issym():
        link_target = posixpath.normpath(posixpath.join(posixpath.dirname(target), member.linkname))
        if member.linkname.startswith("/") or not link_target.startswith(root + "/"):
            raise FetchError(
                f"unsafe member {name!r}: symbolic link to {member.linkname!r} leaves the code directory"
            )
    if member.islnk():
        link_target = posixpath.normpath(posixpath.join(root, member.linkname))
        if member.linkname.startswith("/") or not link_target.startswith(root + "/"):
            raise FetchError(
                f"unsafe member {name!r}: hard link to {member.linkname!r} leaves the code directory"
            )
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise FetchError(f"unsafe member {name!r}: unsupported type")


def extract_tarball(tarball, staging):
    root = "/__code__"
    try:
        with tarfile.open(tarball, "r:*") as archive:
            members = archive.getmembers()
            for member in members:
                check_member(member, root)
            for member in members:
                # Ownership and odd modes from the archive are not wanted in the container.
                member.uid = member.gid = 0
                member.uname = member.gname = "root"
                member.mode = (member.mode & 0o755) | (0o700 if member.isdir() else 0o600)
            # The checks above are the guard; Python's own "tar" filter (3.11.4+) is a second one.
            options = {"filter": "tar"} if hasattr(tarfile, "tar_filter") else {}
            archive.extractall(staging, members=members, **options)
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise FetchError(f"{tarball} is not a readable tar archive: {error}") from None
    except OSError as error:
        raise FetchError(f"cannot read {tarball}: {error}") from None


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
                shutil.copytree(path, staging, symlinks=True)
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
