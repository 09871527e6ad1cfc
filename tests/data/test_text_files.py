"""The `text_files` dataset: the user's CSV, TSV, JSON Lines or `text;label` files, local or downloaded."""

import csv
import functools
import hashlib
import http.server
import json
import random
import threading

import pytest

import trainlab
from trainlab.data import DATASETS, cache_root
from trainlab.data.text_files import label_order, read_rows
from trainlab.errors import DataError, DataWarning, UsageError
from trainlab.tools.evaluate import evaluate_run

REVIEWS = [("a great film", "5"), ('he said "wow", then left', "1"), ("fine,\nthen dull", "3"), ("superb", "5")]


def write_csv(path, rows, header=("id", "review", "stars"), delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows([i, text, label] for i, (text, label) in enumerate(rows))
    return path


def build(train, test, **options):
    return DATASETS.build("text_files", train=str(train), test=str(test), **options)


def test_csv_reads_quoted_cells_and_numbers_rows_as_an_editor_does(tmp_path):
    path = write_csv(tmp_path / "train.csv", REVIEWS)
    rows = read_rows(path, text="review", label="stars")
    assert rows.texts == ["a great film", 'he said "wow", then left', "fine,\nthen dull", "superb"]
    assert rows.labels == ["5", "1", "3", "5"]
    assert rows.lines == [2, 3, 4, 6], "a quoted line break makes the next row start a line later"


def test_tsv_jsonl_and_semicolon_lines_read_the_same_texts_and_labels(tmp_path):
    pairs = [("a great film", "pos"), ("so dull; so long", "neg")]
    write_csv(tmp_path / "a.tsv", pairs, header=("id", "text", "label"), delimiter="\t")
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t, "label": y, "n": 1}) + "\n\n" for t, y in pairs))
    (tmp_path / "a.txt").write_text("".join(f"{t};{y}\n" for t, y in pairs))
    for name in ("a.tsv", "a.jsonl", "a.txt"):
        rows = read_rows(tmp_path / name)
        assert (rows.texts, rows.labels) == ([t for t, _ in pairs], [y for _, y in pairs]), name
    assert read_rows(tmp_path / "a.jsonl").lines == [1, 3]


def test_a_json_file_is_read_as_json_lines_and_numbers_become_labels(tmp_path):
    (tmp_path / "a.json").write_text('{"review": "great", "stars": 5}\n{"review": "awful", "stars": 1}\n')
    assert read_rows(tmp_path / "a.json", text="review", label="stars").labels == ["5", "1"]


def test_classes_are_the_training_labels_sorted_numerically_when_all_are_integers(tmp_path):
    rows = [(f"text {i}", label) for i, label in enumerate(["10", "2", "1", "2"])]
    dataset = build(write_csv(tmp_path / "train.csv", rows), write_csv(tmp_path / "test.csv", rows[:2]), text="review",
                    label="stars")  # fmt: skip
    assert dataset.classes == ["1", "2", "10"]
    assert dataset.train.labels.tolist() == [2, 1, 0, 1] and dataset.test.labels.tolist() == [2, 1]
    assert dataset.val is None and dataset.source == f"text files {tmp_path / 'train.csv'}"
    assert label_order(["b", "10", "a"]) == ["10", "a", "b"]


def test_given_labels_keep_their_order_and_a_val_file_is_read(tmp_path):
    train = write_csv(tmp_path / "train.csv", REVIEWS)
    dataset = build(train, train, val=str(train), text="review", label="stars", labels=["5", "3", "1"], max_length=1)
    assert dataset.classes == ["5", "3", "1"] and dataset.val.labels.tolist() == [0, 2, 1, 0]
    assert dataset.train.tokens[1] == ["he"], "max_length keeps the first tokens"


def test_test_only_reads_neither_train_nor_val_and_takes_the_test_file_s_labels(tmp_path):
    test = write_csv(tmp_path / "test.csv", REVIEWS)
    gone = tmp_path / "gone.csv"
    dataset = build(gone, test, val=str(gone), text="review", label="stars", test_only=True)
    assert dataset.train is None and dataset.val is None and dataset.classes == ["1", "3", "5"]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("train.csv", b"id,review,stars\n1,good,5\n2,caf\xe9,1\n", r"train.csv, line 3: not UTF-8"),
    ("train.csv", b"id,reviews,stars\n1,good,5\n", r"train.csv: no column 'review' \(did you mean 'reviews'\?\); the columns are: id, re"),
    ("train.csv", b"id,review,rating\n1,good,5\n", r"train.csv: no column 'stars'; the columns are: id, review, rat"),
    ("train.csv", b"id,review,stars\n1,good,5\n2,  ,1\n", r"train.csv, line 3: the 'review' cell is empty"),
    ("train.csv", b"id,review,stars\n1,good,5\n\n2,bad,\n", r"train.csv, line 4: the 'stars' cell is empty"),
    ("train.csv", b"id,review,stars\n1,good,5\n2,good, really,5\n", r"train.csv, line 3: 4 cells where the header has 3"),
    ("train.csv", b"id,review,stars\n", r"train.csv: no rows in the file"),
    ("train.csv", b"", r"train.csv: the file is empty; expected a header line"),
    ("train.csv", b"id,review,stars\n1,good,5\n2,fine,5\n", r"train.csv: every row has the label '5'; a classifier needs 2"),
    ("train.jsonl", b'{"review": "good", "stars": 5}\n{"review": "bad", stars: 1}\n', r"train.jsonl, line 2: not JSON"),
    ("train.jsonl", b'{"review": "good", "stars": 5}\n{"text": "bad"}\n', r"train.jsonl, line 2: no key 'review'"),
    ("train.json", b'[{"review": "good", "stars": 5}]\n', r"train.json, line 1: a JSON list, not an object"),
    ("train.txt", b"good;5\nbad;\n", r"train.txt, line 2: the label after the last ';' is empty"),
    ("train.txt", b"good;5\nbad 1\n", r"train.txt, line 2: no ';' in the line"),
    ("train.dat", b"", r"train.dat: cannot tell the format from the suffix '.dat'; set data.format"),
])  # fmt: skip
def test_a_bad_training_file_is_a_usage_error_naming_the_file_and_line(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    test = write_csv(tmp_path / "test.csv", REVIEWS)
    with pytest.raises(UsageError, match=message) as error:
        build(tmp_path / name, test, text="review", label="stars")
    assert error.value.exit_code == 2


def test_a_test_label_outside_the_training_labels_names_the_line_and_the_labels(tmp_path):
    train = write_csv(tmp_path / "train.csv", REVIEWS)
    test = write_csv(tmp_path / "test.csv", [("good", "5"), ("meh", "4")])
    with pytest.raises(UsageError, match=r"test.csv, line 3: unknown label '4'; expected one of: 1, 3, 5"):
        build(train, test, text="review", label="stars")


def test_a_missing_file_names_the_option(tmp_path):
    train = write_csv(tmp_path / "train.csv", REVIEWS)
    with pytest.raises(UsageError, match=r"nowhere.csv: file not found \(data.test\)"):
        build(train, tmp_path / "nowhere.csv", text="review", label="stars")


@pytest.fixture
def server(tmp_path):
    """A folder served at http://127.0.0.1:<port>/ by a thread; yields (folder, base URL, requested paths)."""
    folder, requested = tmp_path / "served", []
    folder.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requested.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}", requested
    httpd.shutdown()
    httpd.server_close()


def test_a_url_is_downloaded_once_into_the_cache_and_checked(server, tmp_path):
    folder, base, requested = server
    train = write_csv(folder / "train.csv", REVIEWS)
    sha256 = hashlib.sha256(train.read_bytes()).hexdigest()
    for _ in range(2):
        dataset = build(f"{base}/train.csv", f"{base}/train.csv", text="review", label="stars", sha256={"train": sha256,
                        "test": sha256})  # fmt: skip
    assert dataset.classes == ["1", "3", "5"] and len(dataset.test) == 4
    assert (cache_root() / "text_files" / f"{sha256[:16]}-train.csv").read_bytes() == train.read_bytes()
    assert requested == ["/train.csv"], "the second build reads the cached file"


def test_a_url_without_checksum_is_read_with_a_warning(server):
    folder, base, _ = server
    write_csv(folder / "train.csv", REVIEWS)
    with pytest.warns(DataWarning, match="without a check of its contents"):
        dataset = build(f"{base}/train.csv", folder / "train.csv", text="review", label="stars")
    assert "not checked against a SHA-256" in dataset.source


def test_a_wrong_checksum_names_expected_and_got(server, tmp_path):
    folder, base, _ = server
    train = write_csv(folder / "train.csv", REVIEWS)
    actual = hashlib.sha256(train.read_bytes()).hexdigest()
    for given in (f"{base}/train.csv", train):
        with pytest.raises(DataError, match=f"expected SHA-256 {'0' * 64}.*got {actual}"):
            build(given, train, text="review", label="stars", sha256={"train": "0" * 64})
    assert not list((cache_root() / "text_files").iterdir()), "a corrupt download leaves no file"


def test_an_unreachable_url_says_which_file_to_put_where(tmp_path):
    url, sha256 = "http://127.0.0.1:9/train.csv", "ab" * 32
    with pytest.raises(UsageError, match=r"(?s)missing file: .*text_files.abababab.*-train.csv\n.*the download from "
                                         rf"{url} failed.*by hand from {url} \(SHA-256 {sha256}\) and put it at"):
        build(url, tmp_path / "test.csv", sha256={"train": sha256})


KEYWORDS = {"1": ["awful", "terrible", "boring"], "3": ["okay", "average", "decent"], "5": ["great", "wonderful", "superb"]}
FILLERS = ["the", "film", "was", "really", "quite", "and", "plot", "acting"]


def reviews(count, seed):
    rng = random.Random(seed)
    pairs = []
    for i in range(count):
        stars = "135"[i % 3]
        words = rng.choices(FILLERS, k=rng.randint(1, 5))
        words.insert(rng.randrange(len(words) + 1), rng.choice(KEYWORDS[stars]))
        pairs.append((" ".join(words), stars))
    return pairs


def test_a_text_model_trains_on_csv_files_predicts_and_is_evaluated(tmp_path):
    train, test = write_csv(tmp_path / "train.csv", reviews(60, 0)), write_csv(tmp_path / "test.csv", reviews(15, 1))
    run = trainlab.run(
        None, data={"name": "text_files", "train": str(train), "test": str(test), "text": "review", "label": "stars",
                    "batch_size": 16},
        model={"name": "lstm_classifier", "embedding_dim": 8, "hidden_size": 8}, optimizer={"lr": 0.01}, epochs=2,
        output_dir=str(tmp_path / "runs"), progress=False, quiet=True,
    )  # fmt: skip
    assert 0 <= run.test["accuracy"] <= 1
    (answer,) = run.predict(["a wonderful film"], top=3)
    assert sorted(label for label, _ in answer) == ["1", "3", "5"]
    assert json.loads((run.path / "data.json").read_text())["class_counts"]["test"] == {"1": 5, "3": 5, "5": 5}
    assert evaluate_run(run.path, "best").accuracy == pytest.approx(run.test["accuracy"]), "eval builds it with test_only"
