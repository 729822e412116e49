"""The demo's steps on their own (`reid.demo.roles`, `reid.demo.report`): the protocol's roles of the gallery for
a query, the query itself left out, the note on the first true match, and each item's kind in the strip."""
from __future__ import annotations

import numpy as np

from reid.demo.report import Accuracy, _kind, protocol_note
from reid.demo.roles import UNKNOWN_ROLE, parse_ids, query_roles
from reid.evaluation.verification import JUNK_ID, MATCH, NEGATIVE, SAME_CAMERA, SELF


def _gallery(tmp_path, names):
    paths = []
    for i, name in enumerate(names):
        path = tmp_path / "g" / name
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(bytes([i]) * (10 + i))  # distinct contents: no file is a copy of another
        paths.append(str(path.resolve()))
    return paths, [len(open(p, "rb").read()) for p in paths]


def test_roles_follow_the_names_and_leave_the_query_out(tmp_path):
    paths, sizes = _gallery(tmp_path, ["0001_c1s1_000001_00.jpg", "0001_c2s1_000002_00.jpg",
                                       "0002_c1s1_000003_00.jpg", "-1_c3s1_000004_00.jpg", "photo.jpg"])
    query = paths[0]  # a query that is itself in the gallery
    (tmp_path / "elsewhere.jpg").write_bytes(b"z" * 99)  # and one of no gallery item's size
    known = query_roles([query, str(tmp_path / "elsewhere.jpg")], paths, sizes)
    assert known.roles[0].tolist() == [SELF, MATCH, NEGATIVE, JUNK_ID, NEGATIVE]
    assert known.roles[1] is None  # a query name without ids: its relation to the gallery is unknown
    assert known.copies == [[0], []] and known.all_known is False
    assert known.ignored == 2  # the query itself and the junk item
    assert parse_ids(paths[1]) == (1, 2) and parse_ids(paths[4]) is None


def test_a_copy_of_a_query_without_ids_is_left_out_and_the_rest_is_unknown(tmp_path):
    paths, sizes = _gallery(tmp_path, ["0001_c1s1_000001_00.jpg", "0002_c1s1_000002_00.jpg"])
    query = tmp_path / "mine.jpg"
    query.write_bytes(open(paths[1], "rb").read())  # a byte copy of gallery item 1
    known = query_roles([str(query)], paths, sizes)
    assert known.roles[0].tolist() == [UNKNOWN_ROLE, SELF] and known.copies == [[1]]
    assert _kind(known.roles[0], 1, parse_ids(paths[1])) == ("ignored", "the query itself (ignored)")
    assert _kind(known.roles[0], 0, parse_ids(paths[0])) == ("unknown", "id unknown")


def test_the_note_counts_ranks_as_the_protocol_does():
    role = np.array([SAME_CAMERA, NEGATIVE, MATCH, NEGATIVE], dtype=np.int8)
    accuracy = Accuracy()
    note = protocol_note(role, [0, 1, 2, 3], topk=3, all_known=True, accuracy=accuracy)
    assert note == ("- first true match: #3 below (protocol rank 2: the ignored items before it are not counted)")
    assert (accuracy.counted, accuracy.hits1, accuracy.hitsk) == (1, 0, 1)
    note = protocol_note(role, [0, 1, 3, 2], topk=2, all_known=True, accuracy=accuracy)
    assert note == "- first true match: not within the protocol's top 2"
    assert (accuracy.counted, accuracy.hits1, accuracy.hitsk) == (2, 0, 1)
    note = protocol_note(role, [0, 1, 3, 2], topk=3, all_known=True, accuracy=accuracy)
    assert note == "- first true match: protocol rank 3, after the 3 items shown (they include ignored ones)"
    assert protocol_note(role, [2, 0], topk=1, all_known=False, accuracy=accuracy) == ""  # unknown names
    assert protocol_note(None, [2, 0], topk=1, all_known=True, accuracy=accuracy) == ""
    assert accuracy.counted == 3
    assert _kind(role, 0, (1, 1)) == ("ignored", "same id, same camera (ignored)")
    assert _kind(role, 2, (1, 2)) == ("match", "true match") and _kind(role, 1, None) == ("unknown", "id unknown")


def test_the_feature_cache_key_is_the_checkpoint_hash_with_the_flip_setting(tmp_path):
    import hashlib

    from reid.demo.output import file_digest
    from reid.demo.run import checkpoint_key

    path = tmp_path / "m.pth"
    path.write_bytes(bytes(range(256)) * 5000)  # over one 1 MiB block
    data = path.read_bytes()
    assert checkpoint_key(path, True) == hashlib.sha256(data + b"flip").hexdigest()  # the keys caches were made with
    assert checkpoint_key(path, False) == hashlib.sha256(data + b"noflip").hexdigest()
    assert file_digest(str(path)) == hashlib.sha1(data).hexdigest()
