import Engine
import Foundation
import NN
import Testing

func temporaryURL(_ name: String) -> URL {
  FileManager.default.temporaryDirectory.appendingPathComponent(
    "gvae-nn-\(ProcessInfo.processInfo.processIdentifier)-\(name)")
}

/// A valid file with one F32 tensor "x" [2] = [1, 2], from a hand-written header.
func handWritten(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
  var out = Data()
  let h = Array(header.utf8)
  withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) {
    out.append(contentsOf: $0)
  }
  out.append(contentsOf: h)
  out.append(contentsOf: data)
  return out
}

let twoFloats: [UInt8] = [0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]  // 1.0, 2.0

@Suite struct SafeTensorsTests {
  @Test func roundTripF32AndF16() throws {
    let a = randn([3, 4], seed: 1)
    let b = randn([5], seed: 2)
    let file = SafeTensorsFile(tensors: ["model.a": a, "model.b": b], metadata: ["epoch": "3"])
    let url = temporaryURL("f32.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try file.write(to: url)
    let back = try SafeTensorsFile(contentsOf: url)
    #expect(back == file)
    #expect(back.metadata == ["epoch": "3"])

    let half = SafeTensorsFile(tensors: ["a": a], dtype: .F16)
    let decoded = try SafeTensorsFile(decoding: try half.encoded())
    #expect(decoded.entries["a"]?.dtype == .F16)
    let worst = zip(decoded.tensors["a"]!.storage, a.storage).map { abs($0 - $1) / max(1, abs($1)) }
      .max()!
    #expect(worst < 1e-3)
  }

  @Test func halfConversionIsExactOnRepresentableValues() {
    for v: Float in [0, -0, 1, -2, 0.5, 65504, 6.1035156e-05, 5.9604645e-08, 1000.5] {
      #expect(halfBitsToFloat(floatToHalfBits(v)) == v, "\(v)")
    }
    #expect(halfBitsToFloat(floatToHalfBits(1e6)) == .infinity)
    #expect(floatToHalfBits(1 + 0x1p-11) == 0x3C00)  // tie rounds to even
    #expect(halfBitsToFloat(floatToHalfBits(.nan)).isNaN)
  }

  @Test func headerIsPaddedAndAligned() throws {
    let data = try SafeTensorsFile(tensors: ["x": Tensor(shape: [1], storage: [1])]).encoded()
    let n = data.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
    #expect(n % 8 == 0 && data.count == 8 + n + 4)
  }

  @Test func pythonWrittenFixtureLoads() throws {
    let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("Fixtures/python.safetensors")
    let file = try SafeTensorsFile(contentsOf: url)
    #expect(file.metadata == ["source": "python", "format": "np"])
    #expect(
      file.entries["encoder.weight"]?.tensor
        == Tensor(shape: [2, 3], storage: [-0.625, -0.375, -0.125, 0.125, 0.375, 0.625]))
    #expect(file.entries["encoder.bias"]?.tensor == Tensor(shape: [3], storage: [1.5, -2, 1e-3]))
    #expect(file.entries["half"]?.dtype == .F16)
    #expect(
      file.entries["half"]?.tensor.storage == [
        0.5, -1.25, 65504, halfBitsToFloat(floatToHalfBits(6e-8)),
      ])
    #expect(file.entries["double"]?.tensor == Tensor(shape: [1, 1], storage: [Float(Double.pi)]))
    #expect(file.entries["steps"]?.dtype == .I64)
    #expect(file.entries["steps"]?.tensor.storage == [1, -2, 3e9])
    #expect(file.entries["scalar"]?.tensor == Tensor(scalar: 7))
  }

  /// Writes a file and has the reference Python library check it with
  /// `tools/safetensors_interop.py check` (python3 with safetensors and numpy: tools/setup.sh).
  @Test func swiftWrittenFileForPython() throws {
    var file = SafeTensorsFile(
      tensors: ["a": Tensor(shape: [2, 2], storage: [1, 2, 3, 4].map { $0 / 8 })],
      metadata: ["source": "swift"])
    file.entries["b"] = SafeTensorsEntry(
      dtype: .F16, tensor: Tensor(shape: [3], storage: [0.5, -2, 1024]))
    let url = temporaryURL("for-python.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try file.write(to: url)
    let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
      .appendingPathComponent("../../tools/safetensors_interop.py").standardized
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = ["python3", script.path, "check", url.path]
    let stderr = Pipe()
    process.standardError = stderr
    try process.run()
    let message = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    #expect(
      process.terminationStatus == 0,
      "python3 tools/safetensors_interop.py check failed (run tools/setup.sh): \(message)")
  }

  @Test func truncatedFilesThrow() throws {
    let good = try SafeTensorsFile(tensors: ["x": Tensor(shape: [2], storage: [1, 2])]).encoded()
    #expect(throws: SafeTensorsError.truncated(needed: 8, available: 5)) {
      try SafeTensorsFile(decoding: good.prefix(5))
    }
    #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(decoding: good.prefix(20)) }
    // Header intact, data cut short: the offsets point past the end.
    #expect(throws: SafeTensorsError.self) { try SafeTensorsFile(decoding: good.dropLast(3)) }
    do {
      _ = try SafeTensorsFile(decoding: good.dropLast(3))
    } catch let e as SafeTensorsError {
      guard case .offsetsOutOfBounds(let name, _, _, _) = e else {
        Issue.record("\(e)")
        return
      }
      #expect(name == "x")
    }
  }

  @Test func corruptHeadersThrowTypedErrors() {
    let x = #""x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    #expect(throws: SafeTensorsError.corruptHeader("not valid JSON")) {
      try SafeTensorsFile(decoding: handWritten(header: "{" + x, data: twoFloats))
    }
    #expect(throws: SafeTensorsError.corruptHeader("not a JSON object")) {
      try SafeTensorsFile(decoding: handWritten(header: "[1, 2]", data: twoFloats))
    }
    #expect(throws: SafeTensorsError.headerTooLarge(1 << 40)) {
      try SafeTensorsFile(decoding: handWritten(header: "{}", data: [], declaredLength: 1 << 40))
    }
    #expect(throws: SafeTensorsError.unknownDType(tensor: "x", dtype: "F8")) {
      try SafeTensorsFile(
        decoding: handWritten(
          header: #"{"x":{"dtype":"F8","shape":[2],"data_offsets":[0,8]}}"#, data: twoFloats))
    }
    #expect(throws: SafeTensorsError.byteCountMismatch(tensor: "x", expected: 12, actual: 8)) {
      try SafeTensorsFile(
        decoding: handWritten(
          header: #"{"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: twoFloats))
    }
    #expect(throws: SafeTensorsError.overlappingTensors("x", "y")) {
      try SafeTensorsFile(
        decoding: handWritten(
          header: "{" + x + #","y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
          data: twoFloats))
    }
    #expect(throws: SafeTensorsError.invalidShape(tensor: "x", "[-2]")) {
      try SafeTensorsFile(
        decoding: handWritten(
          header: #"{"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: twoFloats))
    }
    #expect(throws: SafeTensorsError.corruptHeader("__metadata__ value for 'a' is not a string")) {
      try SafeTensorsFile(
        decoding: handWritten(header: "{" + x + #","__metadata__":{"a":1}}"#, data: twoFloats))
    }
  }

  @Test func loadingIntoParametersReportsEveryMismatch() throws {
    let file = SafeTensorsFile(tensors: [
      "enc.weight": Tensor(zeros: [3, 2]), "enc.bias": Tensor(zeros: [3]),
      "extra": Tensor(zeros: [1]),
    ])
    let w = Parameter("enc.weight", Tensor(zeros: [2, 3]))
    let b = Parameter("enc.bias", Tensor(repeating: 1, shape: [3]))
    let missing = Parameter("dec.weight", Tensor(zeros: [1]))
    do {
      try file.load(into: [w, b, missing])
      Issue.record("expected a mismatch")
    } catch let m as CheckpointMismatch {
      #expect(m.missing == ["dec.weight"])
      #expect(m.unexpected == ["extra"])
      #expect(m.description.contains("shape of enc.weight: model [2, 3] vs checkpoint [3, 2]"))
    }
    #expect(b.value.storage == [1, 1, 1])  // nothing assigned on mismatch
    try SafeTensorsFile(tensors: ["enc.bias": Tensor(zeros: [3])]).load(into: [b])
    #expect(b.value.storage == [0, 0, 0])
  }

  @Test func checkpointRoundTripWithOptimizerAndBuffers() throws {
    var rng = SeededRandom(seed: 3)
    let dense = Dense(inputSize: 3, outputSize: 2, name: "dec", rng: &rng)
    let bn = BatchNorm(featureCount: 2, name: "dec.bn")
    let adam = Adam(parameters: dense.parameters + bn.parameters, learningRate: 0.01)
    let tape = Tape()
    let loss = sum(
      bn(dense(tape.constant(randn([4, 3], seed: 4)), tape: tape), tape: tape, training: true))
    tape.backward(loss)
    adam.step()
    let url = temporaryURL("ckpt.safetensors")
    defer { try? FileManager.default.removeItem(at: url) }
    try Checkpoint.save(
      parameters: dense.parameters + bn.parameters, buffers: bn.buffers, optimizer: adam,
      metadata: ["epoch": "1"], to: url)
    var rng2 = SeededRandom(seed: 99)
    let dense2 = Dense(inputSize: 3, outputSize: 2, name: "dec", rng: &rng2)
    let bn2 = BatchNorm(featureCount: 2, name: "dec.bn")
    let adam2 = Adam(parameters: dense2.parameters + bn2.parameters, learningRate: 0.01)
    let meta = try Checkpoint.load(
      parameters: dense2.parameters + bn2.parameters, buffers: bn2.buffers, optimizer: adam2,
      from: url)
    #expect(meta == ["epoch": "1"])
    #expect(dense2.weight.value == dense.weight.value)
    #expect(bn2.runningMean.value == bn.runningMean.value)
    #expect(adam2.states == adam.states && adam2.stepCount == 1)
  }
}
