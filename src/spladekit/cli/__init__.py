"""The ``spladekit`` command line: train, eval, encode, index, search, info, export, serve."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import sys
import warnings
from collections.abc import Callable, Sequence

from spladekit.checks import check_positive_int
from spladekit.cli.config import ConfigKeyError

# Only light modules are imported here: each command imports what it needs, so `spladekit --help` and argument
# errors answer at once instead of after loading torch and transformers.


def _positive_int(meaning: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1 (``--max-queries -1`` is an error, not "all but the last")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= 1 ({meaning}), got {text!r}") from None
        try:
            return check_positive_int(value, "value", meaning)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number >= 1 ({meaning}), got {text!r}") from None

    parse.__name__ = "positive integer"
    return parse


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spladekit", description="Train, evaluate and serve sparse retrieval "
                                     "encoders (SPLADE, inference-free SPLADE, CSR).")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = sub.add_parser("train", help="train a model from a YAML config",
                           description="Train as CONFIG.yaml describes (model, data, loss, training arguments, "
                                       "evaluation); writes the model, its card, metrics.json and plots.")
    train.add_argument("config", help="the YAML config, e.g. examples/quickstart.yaml")
    train.add_argument("--override", "-o", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. training.learning_rate=1e-4 (repeatable)")
    train.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                       help="continue an interrupted run from the newest complete checkpoint in OUTPUT_DIR.partial "
                            "(or from CHECKPOINT); needs training.save_strategy to have saved one")
    train.add_argument("--overwrite", action="store_true",
                       help="replace a finished run in training.output_dir (refused otherwise), or start an "
                            "interrupted one over")

    evaluate = sub.add_parser("eval", help="evaluate a model on BEIR folders",
                              description="Retrieval metrics of MODEL on one or more BEIR-layout folders.")
    evaluate.add_argument("model", help="a model folder or Hugging Face Hub id")
    evaluate.add_argument("--beir", nargs="+", required=True, metavar="DIR", help="BEIR folders")
    evaluate.add_argument("--split", default="test")
    evaluate.add_argument("--batch-size", type=_positive_int("texts per batch"), default=32)
    evaluate.add_argument("--max-queries", type=_positive_int("the number of queries to keep"), default=None,
                          help="evaluate on the first N queries only (by id)")
    evaluate.add_argument("--max-seq-length", type=_positive_int("tokens per text"), default=None)
    evaluate.add_argument("--json", metavar="FILE", help="also write the metrics to this JSON file")

    encode = sub.add_parser(
        "encode", help="encode texts or a whole corpus into sparse vectors",
        description="Encode INPUT (a .jsonl / .jsonl.gz / .parquet corpus, a BEIR folder, or one text a line) into "
                    "OUTPUT. OUTPUT ending in .jsonl (one {id, weights: {token: weight}} a line) or .pt (ids and a "
                    "sparse tensor) is one file, encoded in memory. Any other OUTPUT is a folder of Parquet shards "
                    "(id, term indices, weights) plus manifest.json: the corpus is streamed with memory bounded "
                    "by the shard, and running the same command again after a crash resumes it.")
    encode.add_argument("model")
    encode.add_argument("input")
    encode.add_argument("output")
    encode.add_argument("--batch-size", type=_positive_int("texts per batch"), default=32)
    encode.add_argument("--query", action="store_true", help="encode as queries (query route and prompt)")
    encode.add_argument("--max-active-dims", type=_positive_int("weights kept per vector"), default=None)
    shards = encode.add_argument_group("shard folders (OUTPUT not ending in .jsonl / .pt)")
    shards.add_argument("--shard-size", type=_positive_int("documents per shard"), default=10_000, help="documents per Parquet shard")
    shards.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"],
                        help="run the model in this precision (vectors are stored as fp32)")
    shards.add_argument("--overwrite", action="store_true",
                        help="replace shards of another model, settings or corpus found in OUTPUT")
    shards.add_argument("--ray", action="store_true", help="encode on a Ray cluster (the ray extra)")
    shards.add_argument("--ray-address", default=None,
                        help="the cluster to join, e.g. 'auto' or ray://head:10001 (default: a local cluster)")
    shards.add_argument("--num-workers", type=_positive_int("Ray actors"), default=None, help="Ray actors, one model each (default 2)")
    shards.add_argument("--cpus-per-worker", type=float, default=1.0)
    shards.add_argument("--gpus-per-worker", type=float, default=0.0)

    index = sub.add_parser("index", help="build a search index from a corpus",
                           description="Encode CORPUS (.jsonl or one text per line) and save an embedded index.")
    index.add_argument("model")
    index.add_argument("corpus")
    index.add_argument("index_dir")
    index.add_argument("--batch-size", type=_positive_int("texts per batch"), default=32)

    search = sub.add_parser("search", help="search an index",
                            description="Search INDEX_DIR (built by 'spladekit index') for a query.")
    search.add_argument("index_dir")
    search.add_argument("query")
    search.add_argument("--top-k", type=_positive_int("hits to show"), default=10)
    search.add_argument("--show-terms", action="store_true", help="show the query's heaviest terms")

    info = sub.add_parser("info", help="describe a model",
                          description="Modules, vocabulary, limits and sparsity on sample texts.")
    info.add_argument("model")
    info.add_argument("--text", action="append", default=None, help="a sample text (repeatable)")

    export = sub.add_parser(
        "export", help="export a model to ONNX / OpenVINO graphs",
        description="Write graphs from token ids to the pooled sparse vector into OUTPUT/onnx/ (and "
                    "OUTPUT/openvino/), next to the saved model, so SparseEncoder(OUTPUT, backend='onnx') or any "
                    "ONNX Runtime client can run them. OUTPUT defaults to MODEL (a local folder).")
    export.add_argument("model", help="a model folder or Hugging Face Hub id")
    export.add_argument("output", nargs="?", default=None,
                        help="the folder to save the model and its graphs in (default: MODEL itself)")
    export.add_argument("--top-k", type=int, default=None,
                        help="graphs return only the K heaviest (indices, values) of each vector")
    export.add_argument("--quantize", action="store_true", help="also write dynamic int8 graphs (model_int8*.onnx)")
    export.add_argument("--openvino", action="store_true", help="also write OpenVINO IR graphs")
    export.add_argument("--file-name", default="model", help="graph file stem (default: model)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset version (default: 17)")
    export.add_argument("--dynamo", action="store_true",
                        help="use torch's torch.export-based ONNX exporter (needs onnxscript)")

    serve = sub.add_parser(
        "serve", help="serve a model (and an index) over HTTP",
        description="Serve MODEL over HTTP: text-embeddings-inference's POST /embed_sparse, POST /search (with "
                    "--index) with the matched terms of every hit, POST /expand, GET /health, /info, /metrics, a "
                    "search page at / and the OpenAPI docs at /docs. Concurrent requests are merged into encoder "
                    "batches. Needs the serve extra: pip install 'spladekit[serve]'.")
    serve.add_argument("model", help="a model folder or Hugging Face Hub id")
    serve.add_argument("--index", default=None, metavar="DIR",
                       help="an index folder built by 'spladekit index' (its texts are served with the hits)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)")
    serve.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    serve.add_argument("--max-batch-size", type=int, default=32,
                       help="texts per encoder batch; concurrent requests are merged up to it (1: no batching)")
    serve.add_argument("--max-wait-ms", type=float, default=5.0,
                       help="how long the first request of a batch waits for others (default 5)")
    serve.add_argument("--max-client-batch-size", type=int, default=64, help="texts per request (default 64)")
    serve.add_argument("--max-chars-per-text", type=int, default=20_000, help="characters per text (default 20000)")
    serve.add_argument("--max-body-bytes", type=int, default=2 * 2**20, help="bytes per request body (default 2 MiB)")
    serve.add_argument("--request-timeout", type=float, default=30.0,
                       help="seconds a request may wait for and use the encoder (default 30)")
    serve.add_argument("--max-concurrent-requests", type=int, default=512,
                       help="requests queued at once before answering 429 (default 512)")
    serve.add_argument("--max-top-k", type=int, default=1000, help="largest top_k of /search (default 1000)")
    serve.add_argument("--no-auto-truncate", action="store_true",
                       help="refuse (413) texts longer than the model's max_seq_length unless a request sends "
                            "truncate: true (default: truncate them)")
    serve.add_argument("--api-key-file", default=None, metavar="FILE",
                       help="require 'Authorization: Bearer <key>' with the key in FILE (first line)")
    serve.add_argument("--device", default=None, help="cpu, cuda, ... (default: the best available)")
    return parser


def _print_report(report: dict) -> None:
    before, after = report.get("before"), report.get("after")
    print(f"Trained on {report['train_rows']} rows ({', '.join(report['columns'])}) in "
          f"{report['train_seconds']:.0f} s; model saved to {report['model_dir']}")
    for key in (after or before or {}):
        parts = []
        if before and key in before:
            parts.append(f"before {before[key]:.4f}")
        if after and key in after:
            parts.append(f"after {after[key]:.4f}")
        print(f"{key}: {', '.join(parts)}")
    if "plots" in report:
        from spladekit.cli.plots import PLOTS_HINT

        print(f"Plots: {', '.join(report['plots'])}" if report["plots"] else PLOTS_HINT)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    with warnings.catch_warnings():
        # A library's warning as one line naming the command, not a source path and line of spladekit.
        warnings.showwarning = lambda message, category, *_args, **_kwargs: print(
            f"spladekit {args.command}: warning: {message}", file=sys.stderr)
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "train":
            from spladekit.cli.config import load_train_config
            from spladekit.cli.train import run_train

            _print_report(run_train(load_train_config(args.config, args.override), overwrite=args.overwrite,
                                    resume=args.resume))
        elif args.command == "eval":
            from spladekit.cli.commands import metrics_table, run_eval

            results = run_eval(args.model, args.beir, args.split, args.batch_size, args.max_queries,
                               args.max_seq_length)
            print(metrics_table(results))
            if args.json:
                with open(args.json, "w", encoding="utf8") as f:
                    json.dump(results, f, indent=2)
        elif args.command == "encode":
            from spladekit.cli.commands import SINGLE_FILE_SUFFIXES, run_encode, run_encode_shards

            if args.output.endswith(SINGLE_FILE_SUFFIXES):
                if args.ray:
                    raise ValueError(f"--ray writes a folder of Parquet shards; {args.output!r} is a one-file "
                                     "output. Give a folder as OUTPUT.")
                count = run_encode(args.model, args.input, args.output, args.batch_size, args.query,
                                   args.max_active_dims)
                print(f"Encoded {count} texts into {args.output}")
            else:
                manifest = run_encode_shards(
                    args.model, args.input, args.output, ray=args.ray, ray_address=args.ray_address,
                    num_workers=args.num_workers, cpus_per_worker=args.cpus_per_worker,
                    gpus_per_worker=args.gpus_per_worker, shard_size=args.shard_size, batch_size=args.batch_size,
                    query=args.query, max_active_dims=args.max_active_dims, precision=args.precision,
                    overwrite=args.overwrite)
                print(f"Encoded {manifest['documents']} documents ({manifest['nnz']} weights) into "
                      f"{len(manifest['shards'])} shards in {args.output}")
        elif args.command == "index":
            from spladekit.cli.commands import run_index

            try:
                summary = run_index(args.model, args.corpus, args.index_dir, args.batch_size)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError):
                    raise
                print(f"spladekit index: error: could not write {args.index_dir!r}: {exc}. Nothing was changed: "
                      "the previous index there (if any) is complete and still loads.", file=sys.stderr)
                return 2
            print(f"Indexed {summary['documents']} documents ({summary['postings']} postings, "
                  f"{summary['megabytes']:.1f} MB) into {args.index_dir}")
        elif args.command == "search":
            from spladekit.cli.commands import run_search

            result = run_search(args.index_dir, args.query, args.top_k, args.show_terms)
            if args.show_terms:
                print("query terms: " + ", ".join(f"{t} {w:.2f}" for t, w in result["terms"]))
            for rank, (doc_id, score) in enumerate(result["hits"], start=1):
                print(f"{rank:>3}. {doc_id}\t{score:.4f}\t{result['texts'].get(doc_id, '')[:100]}")
        elif args.command == "export":
            from spladekit.cli.export import run_export

            for path in run_export(args.model, args.output, args.top_k, args.quantize, args.openvino,
                                   args.file_name, args.opset, args.dynamo):
                print(f"Wrote {path}")
        elif args.command == "serve":
            from spladekit.cli.serve import run_serve

            run_serve(args)
        elif args.command == "info":
            from spladekit.cli.commands import model_info

            info = model_info(args.model, args.text)
            for key, value in info.items():
                if key == "top_terms":
                    for text, terms in value.items():
                        print(f"top terms of {text[:60]!r}: " + ", ".join(f"{t} {w:.2f}" for t, w in terms))
                elif key != "architecture":
                    print(f"{key}: {value}")
    except (ConfigKeyError, FileNotFoundError, ValueError, ImportError) as exc:
        print(f"spladekit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"spladekit {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"spladekit {args.command}: interrupted"
              + (" (continue a run that saved checkpoints with --resume)" if args.command == "train" else ""),
              file=sys.stderr)
        return 130
    return 0


_OS_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "the file system is read-only",
    errno.ELOOP: "too many levels of symbolic links (a symlink loop?)",
    errno.EISDIR: "a folder is where a file was expected",
    errno.ENOTDIR: "a file is where a folder was expected",
    errno.EEXIST: "it already exists",
}


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: what went wrong, on which path, and what was kept."""
    if exc.errno is None and exc.strerror is None:  # raised with a message of its own, e.g. FileExistsError("...")
        return str(exc) or type(exc).__name__
    what = _OS_ERRORS.get(exc.errno or 0, exc.strerror or type(exc).__name__)
    paths = " -> ".join(repr(p) for p in (exc.filename, exc.filename2) if p is not None)
    message = f"{what}" + (f": {paths}" if paths else "") + "."
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        message += (" Free some space or write elsewhere, then run again; outputs are written whole before they "
                    "replace anything, so existing files were left as they were.")
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        message += " Choose a path you can write to (or read, for an input)."
    return message
