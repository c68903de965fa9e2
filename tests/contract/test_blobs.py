"""Contract: a blob's life: create, upload to the storage, complete, download, delete."""

from __future__ import annotations

import pytest
import requests

from django_connectycube.client import NotFound


def test_a_blob_is_uploaded_completed_downloaded_and_deleted(target, accounts):
    account = accounts.create()
    me = accounts.as_user(account)
    content = b"contract blob " * 64

    blob = me.create_blob("contract.txt", "text/plain")
    account.blobs.append(blob.id)
    assert blob.uid
    assert blob.access is not None and blob.access.params
    me.upload_blob_content(blob, content, name="contract.txt")
    me.complete_blob(blob.id, len(content))

    fetched = me.get_blob(blob.id)
    assert fetched.uid == blob.uid
    assert fetched.is_complete
    url = me.get_blob_download_url(blob.uid)
    download = requests.get(url, timeout=30)
    assert download.status_code == 200
    assert download.content == content

    me.delete_blob(blob.id)
    account.blobs.remove(blob.id)
    with pytest.raises(NotFound):
        me.get_blob(blob.id)
