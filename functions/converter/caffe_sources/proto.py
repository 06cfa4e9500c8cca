"""Caffe's protobuf messages, as far as inference needs them, built as descriptors at import time.

Caffe ships no Python package: its `caffe.proto` is compiled into each Caffe build. Rather than
generate code with protoc at build time, this module declares the subset of messages the
converter reads (field names and numbers as in Caffe's `src/caffe/proto/caffe.proto`) as a
`FileDescriptorProto` and lets the protobuf runtime build the classes. Text files
(`deploy.prototxt`) are parsed by field name and skip fields outside this subset (fillers,
learning rates, data sources: nothing inference reads); binary files (`.caffemodel`) keep
them as unknown fields. Every field that changes what a supported layer computes is declared.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

_FIELD = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _FIELD.LABEL_OPTIONAL, _FIELD.LABEL_REPEATED
_SCALARS = {
    "double": _FIELD.TYPE_DOUBLE,
    "float": _FIELD.TYPE_FLOAT,
    "int64": _FIELD.TYPE_INT64,
    "uint64": _FIELD.TYPE_UINT64,
    "int32": _FIELD.TYPE_INT32,
    "uint32": _FIELD.TYPE_UINT32,
    "bool": _FIELD.TYPE_BOOL,
    "string": _FIELD.TYPE_STRING,
    "bytes": _FIELD.TYPE_BYTES,
}

# V1LayerParameter.LayerType: number -> (enum name, the layer type Caffe's UpgradeV1LayerType gives it).
V1_LAYER_TYPES: dict[int, tuple[str, str]] = {
    0: ("NONE", ""),
    1: ("ACCURACY", "Accuracy"),
    2: ("BNLL", "BNLL"),
    3: ("CONCAT", "Concat"),
    4: ("CONVOLUTION", "Convolution"),
    5: ("DATA", "Data"),
    6: ("DROPOUT", "Dropout"),
    7: ("EUCLIDEAN_LOSS", "EuclideanLoss"),
    8: ("FLATTEN", "Flatten"),
    9: ("HDF5_DATA", "HDF5Data"),
    10: ("HDF5_OUTPUT", "HDF5Output"),
    11: ("IM2COL", "Im2col"),
    12: ("IMAGE_DATA", "ImageData"),
    13: ("INFOGAIN_LOSS", "InfogainLoss"),
    14: ("INNER_PRODUCT", "InnerProduct"),
    15: ("LRN", "LRN"),
    16: ("MULTINOMIAL_LOGISTIC_LOSS", "MultinomialLogisticLoss"),
    17: ("POOLING", "Pooling"),
    18: ("RELU", "ReLU"),
    19: ("SIGMOID", "Sigmoid"),
    20: ("SOFTMAX", "Softmax"),
    21: ("SOFTMAX_LOSS", "SoftmaxWithLoss"),
    22: ("SPLIT", "Split"),
    23: ("TANH", "TanH"),
    24: ("WINDOW_DATA", "WindowData"),
    25: ("ELTWISE", "Eltwise"),
    26: ("POWER", "Power"),
    27: ("SIGMOID_CROSS_ENTROPY_LOSS", "SigmoidCrossEntropyLoss"),
    28: ("HINGE_LOSS", "HingeLoss"),
    29: ("MEMORY_DATA", "MemoryData"),
    30: ("ARGMAX", "ArgMax"),
    31: ("THRESHOLD", "Threshold"),
    32: ("DUMMY_DATA", "DummyData"),
    33: ("SLICE", "Slice"),
    34: ("MVN", "MVN"),
    35: ("ABSVAL", "AbsVal"),
    36: ("SILENCE", "Silence"),
    37: ("CONTRASTIVE_LOSS", "ContrastiveLoss"),
    38: ("EXP", "Exp"),
    39: ("DECONVOLUTION", "Deconvolution"),
}
# The parameter messages a V1 layer of a supported type carries, by their (shared) field name.
V1_PARAM_FIELDS = (
    "concat_param",
    "convolution_param",
    "dropout_param",
    "eltwise_param",
    "inner_product_param",
    "lrn_param",
    "pooling_param",
    "relu_param",
    "softmax_param",
)

# message -> enums declared inside it: name -> [(value name, number)]
_ENUMS: dict[str, dict[str, list[tuple[str, int]]]] = {
    "PoolingParameter": {
        "PoolMethod": [("MAX", 0), ("AVE", 1), ("STOCHASTIC", 2)],
        "RoundMode": [("CEIL", 0), ("FLOOR", 1)],
    },
    "LRNParameter": {"NormRegion": [("ACROSS_CHANNELS", 0), ("WITHIN_CHANNEL", 1)]},
    "EltwiseParameter": {"EltwiseOp": [("PROD", 0), ("SUM", 1), ("MAX", 2)]},
    "V1LayerParameter": {"LayerType": [(name, number) for number, (name, _) in sorted(V1_LAYER_TYPES.items())]},
}
_TOP_ENUMS = {
    "Phase": [("TRAIN", 0), ("TEST", 1)],
    # NVCaffe's storage types, for blobs it saves as raw bytes (FLOAT16 weights).
    "Type": [("DOUBLE", 0), ("FLOAT", 1), ("FLOAT16", 2), ("INT", 3), ("UINT", 4)],
}

# message -> [(field name, number, type, repeated, default)]; a type that is not a scalar names a
# message, or an enum as "Message.Enum" / a top-level enum.
_MESSAGES: dict[str, list[tuple[str, int, str, bool, str | None]]] = {
    "BlobShape": [("dim", 1, "int64", True, None)],
    "BlobProto": [
        ("shape", 7, "BlobShape", False, None),
        ("data", 5, "float", True, None),
        ("double_data", 8, "double", True, None),
        ("raw_data_type", 10, "Type", False, None),  # NVCaffe
        ("raw_data", 12, "bytes", False, None),  # NVCaffe
        ("num", 1, "int64", False, None),
        ("channels", 2, "int64", False, None),
        ("height", 3, "int64", False, None),
        ("width", 4, "int64", False, None),
    ],
    "NetStateRule": [
        ("phase", 1, "Phase", False, None),
        ("min_level", 2, "int32", False, None),
        ("max_level", 3, "int32", False, None),
        ("stage", 4, "string", True, None),
        ("not_stage", 5, "string", True, None),
    ],
    "NetParameter": [
        ("name", 1, "string", False, None),
        ("input", 3, "string", True, None),
        ("input_shape", 8, "BlobShape", True, None),
        ("input_dim", 4, "int32", True, None),
        ("layer", 100, "LayerParameter", True, None),
        ("layers", 2, "V1LayerParameter", True, None),
    ],
    "LayerParameter": [
        ("name", 1, "string", False, None),
        ("type", 2, "string", False, None),
        ("bottom", 3, "string", True, None),
        ("top", 4, "string", True, None),
        ("blobs", 7, "BlobProto", True, None),
        ("include", 8, "NetStateRule", True, None),
        ("exclude", 9, "NetStateRule", True, None),
        ("batch_norm_param", 139, "BatchNormParameter", False, None),
        ("concat_param", 104, "ConcatParameter", False, None),
        ("convolution_param", 106, "ConvolutionParameter", False, None),
        ("dropout_param", 108, "DropoutParameter", False, None),
        ("eltwise_param", 110, "EltwiseParameter", False, None),
        ("flatten_param", 135, "FlattenParameter", False, None),
        ("inner_product_param", 117, "InnerProductParameter", False, None),
        ("input_param", 143, "InputParameter", False, None),
        ("lrn_param", 118, "LRNParameter", False, None),
        ("pooling_param", 121, "PoolingParameter", False, None),
        ("prelu_param", 131, "PReLUParameter", False, None),
        ("relu_param", 123, "ReLUParameter", False, None),
        ("reshape_param", 133, "ReshapeParameter", False, None),
        ("scale_param", 142, "ScaleParameter", False, None),
        ("softmax_param", 125, "SoftmaxParameter", False, None),
    ],
    # Caffe's format before 2015 (`layers { type: CONVOLUTION }`), upgraded by `network` as Caffe's
    # UpgradeV1Net does: the same parameter messages, under other field numbers.
    "V1LayerParameter": [
        ("bottom", 2, "string", True, None),
        ("top", 3, "string", True, None),
        ("name", 4, "string", False, None),
        ("include", 32, "NetStateRule", True, None),
        ("exclude", 33, "NetStateRule", True, None),
        ("type", 5, "V1LayerParameter.LayerType", False, None),
        ("blobs", 6, "BlobProto", True, None),
        ("concat_param", 9, "ConcatParameter", False, None),
        ("convolution_param", 10, "ConvolutionParameter", False, None),
        ("dropout_param", 12, "DropoutParameter", False, None),
        ("eltwise_param", 24, "EltwiseParameter", False, None),
        ("inner_product_param", 17, "InnerProductParameter", False, None),
        ("lrn_param", 18, "LRNParameter", False, None),
        ("pooling_param", 19, "PoolingParameter", False, None),
        ("relu_param", 30, "ReLUParameter", False, None),
        ("softmax_param", 39, "SoftmaxParameter", False, None),
        ("layer", 1, "V0LayerParameter", False, None),
    ],
    # The format before V1 (`layers { layer { type: "conv" } }`): read only to be recognised.
    "V0LayerParameter": [("name", 1, "string", False, None), ("type", 2, "string", False, None)],
    "BatchNormParameter": [
        ("use_global_stats", 1, "bool", False, None),
        ("eps", 3, "float", False, "1e-05"),
    ],
    "ConcatParameter": [("axis", 2, "int32", False, "1"), ("concat_dim", 1, "uint32", False, "1")],
    "ConvolutionParameter": [
        ("num_output", 1, "uint32", False, None),
        ("bias_term", 2, "bool", False, "true"),
        ("pad", 3, "uint32", True, None),
        ("kernel_size", 4, "uint32", True, None),
        ("stride", 6, "uint32", True, None),
        ("dilation", 18, "uint32", True, None),
        ("pad_h", 9, "uint32", False, "0"),
        ("pad_w", 10, "uint32", False, "0"),
        ("kernel_h", 11, "uint32", False, None),
        ("kernel_w", 12, "uint32", False, None),
        ("stride_h", 13, "uint32", False, None),
        ("stride_w", 14, "uint32", False, None),
        ("group", 5, "uint32", False, "1"),
        ("axis", 16, "int32", False, "1"),
    ],
    "DropoutParameter": [("dropout_ratio", 1, "float", False, "0.5")],
    "EltwiseParameter": [
        ("operation", 1, "EltwiseParameter.EltwiseOp", False, "SUM"),
        ("coeff", 2, "float", True, None),
    ],
    "FlattenParameter": [("axis", 1, "int32", False, "1"), ("end_axis", 2, "int32", False, "-1")],
    "InnerProductParameter": [
        ("num_output", 1, "uint32", False, None),
        ("bias_term", 2, "bool", False, "true"),
        ("axis", 5, "int32", False, "1"),
        ("transpose", 6, "bool", False, "false"),
    ],
    "InputParameter": [("shape", 1, "BlobShape", True, None)],
    "LRNParameter": [
        ("local_size", 1, "uint32", False, "5"),
        ("alpha", 2, "float", False, "1"),
        ("beta", 3, "float", False, "0.75"),
        ("norm_region", 4, "LRNParameter.NormRegion", False, "ACROSS_CHANNELS"),
        ("k", 5, "float", False, "1"),
    ],
    "PoolingParameter": [
        ("pool", 1, "PoolingParameter.PoolMethod", False, "MAX"),
        ("pad", 4, "uint32", False, "0"),
        ("pad_h", 9, "uint32", False, "0"),
        ("pad_w", 10, "uint32", False, "0"),
        ("kernel_size", 2, "uint32", False, None),
        ("kernel_h", 5, "uint32", False, None),
        ("kernel_w", 6, "uint32", False, None),
        ("stride", 3, "uint32", False, "1"),
        ("stride_h", 7, "uint32", False, None),
        ("stride_w", 8, "uint32", False, None),
        ("global_pooling", 12, "bool", False, "false"),
        # BVLC Caffe's rounding switch; some forks spell it `ceil_mode` (a bool). Text files are read
        # by name, so that spelling has a number of its own here.
        ("round_mode", 13, "PoolingParameter.RoundMode", False, "CEIL"),
        ("ceil_mode", 1013, "bool", False, "true"),
    ],
    "PReLUParameter": [("channel_shared", 2, "bool", False, "false")],
    "ReLUParameter": [("negative_slope", 1, "float", False, "0")],
    "ReshapeParameter": [
        ("shape", 1, "BlobShape", False, None),
        ("axis", 2, "int32", False, "0"),
        ("num_axes", 3, "int32", False, "-1"),
    ],
    "ScaleParameter": [
        ("axis", 1, "int32", False, "1"),
        ("num_axes", 2, "int32", False, "1"),
        ("bias_term", 4, "bool", False, "false"),
    ],
    "SoftmaxParameter": [("axis", 2, "int32", False, "1")],
}
_PACKED = {("BlobShape", "dim"), ("BlobProto", "data"), ("BlobProto", "double_data")}


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(name="tensorgate_caffe.proto", package="caffe", syntax="proto2")
    for enum_name, values in _TOP_ENUMS.items():
        proto.enum_type.add(name=enum_name).value.extend(
            descriptor_pb2.EnumValueDescriptorProto(name=value, number=number) for value, number in values
        )
    for message_name, fields in _MESSAGES.items():
        message = proto.message_type.add(name=message_name)
        for enum_name, values in _ENUMS.get(message_name, {}).items():
            message.enum_type.add(name=enum_name).value.extend(
                descriptor_pb2.EnumValueDescriptorProto(name=value, number=number) for value, number in values
            )
        for field_name, number, kind, repeated, default in fields:
            field = message.field.add(name=field_name, number=number, label=_REPEATED if repeated else _OPTIONAL)
            if kind in _SCALARS:
                field.type = _SCALARS[kind]
            elif kind in _TOP_ENUMS or "." in kind:
                field.type = _FIELD.TYPE_ENUM
                field.type_name = f".caffe.{kind}"
            else:
                field.type = _FIELD.TYPE_MESSAGE
                field.type_name = f".caffe.{kind}"
            if default is not None:
                field.default_value = default
            if (message_name, field_name) in _PACKED:
                field.options.packed = True
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())
NetParameter: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("caffe.NetParameter"))
BlobProto: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("caffe.BlobProto"))
LayerParameter: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("caffe.LayerParameter"))


def parse_net_text(text: str) -> Any:
    """A NetParameter from prototxt text; raises `text_format.ParseError` on a syntax error."""
    net = NetParameter()
    text_format.Parse(text, net, allow_unknown_field=True)
    return net


def parse_net_binary(data: bytes) -> Any:
    """A NetParameter from a `.caffemodel`; raises `google.protobuf.message.DecodeError` on garbage."""
    net = NetParameter()
    net.ParseFromString(data)
    return net
