// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
//
// dreamdb.Schema and dreamdb.Field (spec/10-schema.md). The builders validate in C++ and
// return the schema itself, so calls chain:
//   Schema().add_int("label").add_image("img").add_embedding("emb", 512)

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dreamdb/quote.h"
#include "dreamdb/schema.h"
#include "python/src/bindings.h"

namespace dreamdb::python {
namespace {

// Accepts DreamDB dtype names ("f32") and NumPy's ("float32", np.float32, np.dtype("f4")).
DType DTypeFromPython(const nb::handle& obj) {
  std::string name;
  if (nb::isinstance<nb::str>(obj)) {
    name = nb::cast<std::string>(obj);
  } else if (nb::hasattr(obj, "__name__")) {  // np.float32 and friends
    name = nb::cast<std::string>(obj.attr("__name__"));
  } else {  // np.dtype("float32") prints as "float32"
    name = nb::cast<std::string>(nb::str(obj));
  }
  static const std::pair<const char*, DType> kNumpy[] = {
      {"uint8", DType::kU8},   {"int8", DType::kI8},    {"uint16", DType::kU16},
      {"int16", DType::kI16},  {"uint32", DType::kU32}, {"int32", DType::kI32},
      {"uint64", DType::kU64}, {"int64", DType::kI64},  {"float32", DType::kF32},
      {"float64", DType::kF64}};
  for (const auto& [numpy_name, dtype] : kNumpy) {
    if (name == numpy_name) return dtype;
  }
  return ValueOrThrow(ParseDType(name));
}

std::vector<uint32_t> ShapeFromPython(const nb::handle& obj) {
  std::vector<uint32_t> shape;
  if (nb::isinstance<nb::int_>(obj)) {
    shape.push_back(nb::cast<uint32_t>(obj));
    return shape;
  }
  for (nb::handle d : nb::iter(obj)) {
    auto v = nb::cast<int64_t>(d);
    if (v < 0 || v > UINT32_MAX) {
      throw StatusError(InvalidArgument("array shape dimension " + std::to_string(v) +
                                        " is out of range 0..4294967295"));
    }
    shape.push_back(static_cast<uint32_t>(v));
  }
  return shape;
}

// The MIME types add_image accepts (python/README.md "Image fields"): raster formats an
// image decoder reads. image/svg+xml is left out on purpose (SVG is a document that can
// hold scripts); a blob of any other type is add_blob(name, mime).
constexpr std::string_view kImageMimeTypes[] = {"image/png",
                                                "image/jpeg",
                                                "image/gif",
                                                "image/webp",
                                                "image/bmp",
                                                "image/tiff",
                                                "image/avif",
                                                "image/heic",
                                                "image/heif",
                                                "image/jxl",
                                                "image/jp2",
                                                "image/x-exr",
                                                "image/x-portable-anymap",
                                                "image/x-portable-bitmap",
                                                "image/x-portable-graymap",
                                                "image/x-portable-pixmap"};

// `mime` if it names an image type of kImageMimeTypes (case-insensitive, parameters
// allowed: "image/JPEG; q=1"); otherwise kInvalidArgument naming the field, the type and
// the accepted list.
Status ValidateImageMime(std::string_view name, std::string_view mime) {
  std::string_view essence = mime.substr(0, mime.find(';'));
  while (!essence.empty() && (essence.back() == ' ' || essence.back() == '\t')) {
    essence.remove_suffix(1);
  }
  std::string lower(essence);
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string accepted;
  for (std::string_view t : kImageMimeTypes) {
    if (lower == t) return Status::Ok();
    accepted += (accepted.empty() ? "" : ", ") + std::string(t);
  }
  return InvalidArgument("image field " + Quote(name) + ": mime " + Quote(mime) +
                         " is not an image type (add_image accepts " + accepted +
                         "; use add_blob(name, mime) for other bytes)");
}

std::string FieldRepr(const FieldSpec& f) {
  std::string r = "Field(" + Quote(f.name) + ", " + std::string(FieldTypeName(f.type));
  if (f.type == FieldType::kBlob) r += ", mime=" + Quote(f.mime);
  if (f.type == FieldType::kEmbedding) r += ", dim=" + std::to_string(f.dim);
  if (f.type == FieldType::kArray) {
    r += ", dtype=" + std::string(DTypeName(f.dtype)) + ", shape=(";
    for (size_t i = 0; i < f.shape.size(); ++i) {
      r += (i ? ", " : "") + std::to_string(f.shape[i]);
    }
    r += f.shape.size() == 1 ? ",)" : ")";
  }
  return r + (f.optional ? ", required=False)" : ")");
}

const FieldSpec& FindOrThrow(const Schema& s, const std::string& name) {
  const FieldSpec* f = s.Find(name);
  if (f == nullptr) {
    std::string known;
    for (const auto& k : s.fields()) known += (known.empty() ? "" : ", ") + k.name;
    throw StatusError(NotFound("no field " + Quote(name) + " (the schema has: " + known + ")"));
  }
  return *f;
}

using SchemaClass = nb::class_<Schema>;

// Registers a scalar builder under its name and its add_scalar_* alias.
template <typename Fn>
void DefScalar(SchemaClass& cls, const char* name, const char* alias, Fn add, const char* doc) {
  auto f = [add](Schema& s, std::string field, bool required) -> Schema& {
    ThrowIfError((s.*add)(std::move(field), !required));
    return s;
  };
  cls.def(name, f, nb::arg("name"), nb::arg("required") = true, nb::rv_policy::reference, doc);
  cls.def(alias, f, nb::arg("name"), nb::arg("required") = true, nb::rv_policy::reference, doc);
}

}  // namespace

void RegisterSchema(nb::module_& m) {
  nb::class_<FieldSpec>(m, "Field", "One field of a schema (read-only; build with Schema).")
      .def_ro("name", &FieldSpec::name)
      .def_prop_ro(
          "type", [](const FieldSpec& f) { return std::string(FieldTypeName(f.type)); },
          "'int64', 'float64', 'bool', 'string', 'categorical', 'timestamp', 'blob', "
          "'embedding' or 'array'.")
      .def_ro("optional", &FieldSpec::optional)
      .def_prop_ro("required", [](const FieldSpec& f) { return !f.optional; })
      .def_prop_ro(
          "mime",
          [](const FieldSpec& f) -> std::optional<std::string> {
            if (f.type != FieldType::kBlob) return std::nullopt;
            return f.mime;
          },
          "MIME type of a blob field; None for other types.")
      .def_prop_ro(
          "dim",
          [](const FieldSpec& f) -> std::optional<uint32_t> {
            if (f.type != FieldType::kEmbedding) return std::nullopt;
            return f.dim;
          },
          "Dimension of an embedding field; None for other types.")
      .def_prop_ro(
          "dtype",
          [](const FieldSpec& f) -> std::optional<std::string> {
            if (f.type != FieldType::kArray) return std::nullopt;
            return std::string(DTypeName(f.dtype));
          },
          "Element type of an array field ('u8' .. 'f64'); None for other types.")
      .def_prop_ro(
          "shape",
          [](const FieldSpec& f) -> std::optional<nb::tuple> {
            if (f.type != FieldType::kArray) return std::nullopt;
            nb::list l;
            for (uint32_t d : f.shape) l.append(d);
            return nb::tuple(l);
          },
          "Shape of an array field's values; None for other types.")
      .def(
          "__eq__", [](const FieldSpec& a, const FieldSpec& b) { return a == b; },
          nb::is_operator())
      .def("__repr__", &FieldRepr)
      // Pickles as the JSON of a one-field schema.
      .def("__getstate__",
           [](const FieldSpec& f) {
             Schema s;
             ThrowIfError(s.Add(f));
             return s.ToJson();
           })
      .def("__setstate__", [](FieldSpec& f, const std::string& json) {
        Schema s = ValueOrThrow(Schema::FromJson(json));
        if (s.fields().size() != 1) ThrowIfError(InvalidArgument("expected one field"));
        new (&f) FieldSpec(s.fields()[0]);
      });

  SchemaClass cls(m, "Schema",
                  "The fields of a dataset's records. Builder methods validate the field "
                  "(InvalidArgumentError naming the problem) and return the schema, so calls "
                  "chain. Fields are required unless required=False.");
  cls.def(nb::init<>());
  DefScalar(cls, "add_int", "add_scalar_int", &Schema::AddInt64, "Adds an int64 field.");
  DefScalar(cls, "add_float", "add_scalar_float", &Schema::AddFloat64, "Adds a float64 field.");
  DefScalar(cls, "add_bool", "add_scalar_bool", &Schema::AddBool, "Adds a bool field.");
  DefScalar(cls, "add_string", "add_scalar_string", &Schema::AddString,
            "Adds a UTF-8 string field.");
  DefScalar(cls, "add_categorical", "add_scalar_categorical", &Schema::AddCategorical,
            "Adds a categorical field: strings from a small set, dictionary-encoded on disk.");
  DefScalar(cls, "add_timestamp", "add_scalar_timestamp", &Schema::AddTimestamp,
            "Adds a timestamp field (int64 nanoseconds since the Unix epoch).");
  cls.def(
      "add_blob",
      [](Schema& s, std::string name, std::string mime, bool required) -> Schema& {
        ThrowIfError(s.AddBlob(std::move(name), std::move(mime), !required));
        return s;
      },
      nb::arg("name"), nb::arg("mime") = "application/octet-stream", nb::arg("required") = true,
      nb::rv_policy::reference, "Adds a blob field (any bytes) with a MIME type.");
  cls.def(
      "add_image",
      [](Schema& s, std::string name, std::string mime, bool required) -> Schema& {
        ThrowIfError(ValidateImageMime(name, mime));
        ThrowIfError(s.AddBlob(std::move(name), std::move(mime), !required));
        return s;
      },
      nb::arg("name"), nb::arg("mime") = "image/png", nb::arg("required") = true,
      nb::rv_policy::reference,
      "Adds a blob field holding encoded images (default image/png). mime must be an image\n"
      "type: image/png, jpeg, gif, webp, bmp, tiff, avif, heic, heif, jxl, jp2, x-exr or\n"
      "x-portable-{anymap,bitmap,graymap,pixmap} (case-insensitive, parameters allowed);\n"
      "anything else raises InvalidArgumentError (use add_blob for other bytes).");
  cls.def(
      "add_embedding",
      [](Schema& s, std::string name, int64_t dim, std::optional<std::string> index, int64_t bits,
         std::string metric, int64_t cells, bool required, std::string quantizer) -> Schema& {
        if (dim < 1 || dim > UINT32_MAX) {
          ThrowIfError(InvalidArgument("embedding " + Quote(name) + ": dim " + std::to_string(dim) +
                                       " must be at least 1"));
        }
        if (bits < 1 || bits > 8) {
          ThrowIfError(InvalidArgument("embedding " + Quote(name) + ": index bits " +
                                       std::to_string(bits) + " must be 1 to 8"));
        }
        if (cells < 0 || cells > UINT32_MAX) {
          ThrowIfError(InvalidArgument("embedding " + Quote(name) + ": index cells " +
                                       std::to_string(cells) + " must be 0 to 2^32 - 1"));
        }
        FieldSpec f;
        f.name = std::move(name);
        f.type = FieldType::kEmbedding;
        f.dim = static_cast<uint32_t>(dim);
        f.optional = !required;
        IndexSpec ix;
        ix.algorithm = index.value_or("ivf");
        ix.metric = std::move(metric);
        ix.bits = static_cast<uint32_t>(bits);
        ix.cells = static_cast<uint32_t>(cells);
        ix.quantizer = std::move(quantizer);
        f.index = ix;
        if (!index) {
          // No declared index, but the index arguments are still checked: a misspelt
          // metric or quantizer is refused (naming the valid values), not ignored.
          ThrowIfError(Schema().Add(f));
          f.index.reset();
        }
        ThrowIfError(s.Add(std::move(f)));
        return s;
      },
      nb::arg("name"), nb::arg("dim"), nb::arg("index") = nb::none(), nb::arg("bits") = 4,
      nb::arg("metric") = "cosine", nb::arg("cells") = 0, nb::arg("required") = true,
      nb::arg("quantizer") = "rabitq", nb::rv_policy::reference,
      "Adds an embedding field: dim float32 values per record. index: None (no declared\n"
      "index), \"ivf\", \"imi\", \"lsh\" or \"graph\" declares the field's vector index (spec/21\n"
      "section 2), with bits (1..8), metric (\"cosine\", \"ip\", \"l2\"), cells (0 = the\n"
      "algorithm's default; ignored by graph) and quantizer (\"rabitq\" or \"pq4\"; pq4 not with\n"
      "graph); Dataset.build_index then builds it. The index arguments are checked even\n"
      "without an index (InvalidArgumentError listing the valid values).");
  cls.def(
      "add_array",
      [](Schema& s, std::string name, nb::handle dtype, nb::handle shape,
         bool required) -> Schema& {
        ThrowIfError(
            s.AddArray(std::move(name), DTypeFromPython(dtype), ShapeFromPython(shape), !required));
        return s;
      },
      nb::arg("name"), nb::arg("dtype"), nb::arg("shape"), nb::arg("required") = true,
      nb::rv_policy::reference,
      nb::sig("def add_array(self, name: str, dtype: str | type | object, "
              "shape: int | collections.abc.Sequence[int], required: bool = True) -> Schema"),
      "Adds a fixed-shape array field. dtype: 'u8', 'i8', 'u16', 'i16', 'u32', 'i32', 'u64', "
      "'i64', 'f32', 'f64' or the NumPy equivalent; shape: a sequence of sizes.");
  cls.def_prop_ro(
      "fields", [](const Schema& s) { return s.fields(); }, "The fields in declaration order.");
  cls.def_prop_ro(
      "names",
      [](const Schema& s) {
        std::vector<std::string> names;
        for (const auto& f : s.fields()) names.push_back(f.name);
        return names;
      },
      "Field names in declaration order.");
  cls.def_prop_ro("version", &Schema::version, "1 for a new schema, +1 per evolution.");
  cls.def("field", &FindOrThrow, nb::arg("name"), nb::rv_policy::copy,
          "The field named `name`; NotFoundError (a KeyError) if absent.");
  cls.def("__getitem__", &FindOrThrow, nb::arg("name"), nb::rv_policy::copy,
          "schema[name]: the field named `name`; NotFoundError (a KeyError) if absent.");
  cls.def(
      "__contains__", [](const Schema& s, const std::string& n) { return s.Find(n) != nullptr; },
      "name in schema: whether a field is named `name`.");
  cls.def(
      "__len__", [](const Schema& s) { return s.fields().size(); }, "The number of fields.");
  cls.def(
      "__eq__", [](const Schema& a, const Schema& b) { return a == b; }, nb::is_operator());
  cls.def("__repr__", [](const Schema& s) {
    std::string r = "Schema([";
    for (size_t i = 0; i < s.fields().size(); ++i) {
      r += (i ? ", " : "") + FieldRepr(s.fields()[i]);
    }
    return r + "])";
  });
  cls.def_static(
      "from_json", [](const std::string& json) { return ValueOrThrow(Schema::FromJson(json)); },
      nb::arg("json"),
      "Parses the JSON form accepted by `dreamdb create --schema`: "
      "{\"fields\": [{\"name\": ..., \"type\": ...}, ...]}.");
  cls.def("to_json", &Schema::ToJson, "The JSON form (see from_json).");
  cls.def("__getstate__", &Schema::ToJson);
  cls.def("__setstate__", [](Schema& s, const std::string& json) {
    new (&s) Schema(ValueOrThrow(Schema::FromJson(json)));
  });
}

}  // namespace dreamdb::python
