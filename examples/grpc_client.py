#!/usr/bin/env python3
"""Streams a generation from a Tandem server's gRPC API (tandem.v1.Inference).

Needs Debian's python3-grpcio and python3-protobuf, and protoc with the gRPC Python plugin
(protobuf-compiler, protobuf-compiler-grpc) to generate the client code from the .proto file:

    python3 examples/grpc_client.py --addr localhost:50051 --prompt "Hello" --max-tokens 32
"""
import argparse
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_ROOT = os.path.join(HERE, "..", "proto")


def load_stubs(out_dir):
    """Generates inference_pb2 / inference_pb2_grpc from proto/tandem/v1/inference.proto."""
    plugin = "/usr/bin/grpc_python_plugin"
    subprocess.run(
        ["protoc", f"--proto_path={PROTO_ROOT}", f"--python_out={out_dir}",
         f"--grpc_python_out={out_dir}", f"--plugin=protoc-gen-grpc_python={plugin}",
         os.path.join(PROTO_ROOT, "tandem", "v1", "inference.proto")],
        check=True)
    sys.path.insert(0, out_dir)
    from tandem.v1 import inference_pb2, inference_pb2_grpc  # noqa: E402
    return inference_pb2, inference_pb2_grpc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addr", default="localhost:50051")
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--prompt", help="prompt text")
    group.add_argument("--prompt-ids", help="comma-separated token ids")
    group.add_argument("--chat", help="a user message, rendered with the model's chat template")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline in seconds")
    args = parser.parse_args()

    import grpc

    with tempfile.TemporaryDirectory() as out_dir:
        pb2, pb2_grpc = load_stubs(out_dir)
        request = pb2.GenerateRequest(max_tokens=args.max_tokens)
        if args.prompt is not None:
            request.prompt = args.prompt
        elif args.prompt_ids is not None:
            request.prompt_ids.extend(int(i) for i in args.prompt_ids.split(","))
        else:
            request.messages.add(role="user", content=args.chat)
        request.sampling.temperature = args.temperature
        if args.seed is not None:
            request.sampling.seed = args.seed
        with grpc.insecure_channel(args.addr) as channel:
            stub = pb2_grpc.InferenceStub(channel)
            info = stub.ModelInfo(pb2.ModelInfoRequest(), timeout=args.timeout)
            print(f"model {info.name} ({info.model_type}), context {info.max_model_len}",
                  file=sys.stderr)
            last = None
            for response in stub.Generate(request, timeout=args.timeout):
                sys.stdout.write(response.text)
                sys.stdout.flush()
                last = response
            print()
            print(f"finish reason {last.finish_reason}; {last.usage.prompt_tokens} prompt tokens, "
                  f"{last.usage.completion_tokens} generated", file=sys.stderr)


if __name__ == "__main__":
    main()
