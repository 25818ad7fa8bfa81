// Matrix products through the BLAS seam.

/// `op(A) · op(B)` for rank-2 `a` and `b`, where `op` transposes when asked:
/// [m, k] · [k, n] → [m, n].
public func matmul(_ a: Var, _ b: Var, transposeA: Bool = false, transposeB: Bool = false) -> Var {
  sameTape(a, b, "matmul").append(
    matmulForward(a.value, b.value, transposeA: transposeA, transposeB: transposeB),
    op: .matmul(transposeA: transposeA, transposeB: transposeB), inputs: [a.id, b.id])
}

/// Batched `op(A[i]) · op(B[i])`: [B, m, k] · [B, k, n] → [B, m, n].
public func batchedMatmul(
  _ a: Var, _ b: Var, transposeA: Bool = false, transposeB: Bool = false
) -> Var {
  sameTape(a, b, "batchedMatmul").append(
    batchedMatmulForward(a.value, b.value, transposeA, transposeB),
    op: .batchedMatmul(transposeA: transposeA, transposeB: transposeB), inputs: [a.id, b.id])
}

/// `op(A) · op(B)` for rank-2 tensors through the BLAS seam.
public func matmulForward(
  _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false
) -> Tensor {
  precondition(
    a.rank == 2 && b.rank == 2, "matmul needs rank-2 tensors, got \(a.shape) and \(b.shape)")
  let m = transposeA ? a.shape[1] : a.shape[0]
  let k = transposeA ? a.shape[0] : a.shape[1]
  let k2 = transposeB ? b.shape[1] : b.shape[0]
  let n = transposeB ? b.shape[0] : b.shape[1]
  precondition(
    k == k2,
    "matmul inner dimensions differ: \(a.shape)\(transposeA ? "ᵀ" : "") and \(b.shape)\(transposeB ? "ᵀ" : "")"
  )
  var c = Tensor(zeros: [m, n])
  if m == 0 || n == 0 || k == 0 { return c }
  a.storage.withUnsafeBufferPointer { pa in
    b.storage.withUnsafeBufferPointer { pb in
      c.storage.withUnsafeMutableBufferPointer { pc in
        BLAS.sgemm(
          transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
          alpha: 1, a: pa.baseAddress!, lda: a.shape[1], b: pb.baseAddress!, ldb: b.shape[1],
          beta: 0, c: pc.baseAddress!, ldc: n)
      }
    }
  }
  return c
}

/// Batched GEMM on rank-3 tensors, one `sgemm` per batch entry.
@usableFromInline
func batchedMatmulForward(_ a: Tensor, _ b: Tensor, _ transposeA: Bool, _ transposeB: Bool)
  -> Tensor
{
  precondition(
    a.rank == 3 && b.rank == 3 && a.shape[0] == b.shape[0],
    "batchedMatmul needs [B, m, k] and [B, k, n], got \(a.shape) and \(b.shape)")
  let batch = a.shape[0]
  let m = transposeA ? a.shape[2] : a.shape[1]
  let k = transposeA ? a.shape[1] : a.shape[2]
  let k2 = transposeB ? b.shape[2] : b.shape[1]
  let n = transposeB ? b.shape[1] : b.shape[2]
  precondition(k == k2, "batchedMatmul inner dimensions differ: \(a.shape) and \(b.shape)")
  var c = Tensor(zeros: [batch, m, n])
  if m == 0 || n == 0 || k == 0 { return c }
  let sa = a.shape[1] * a.shape[2]
  let sb = b.shape[1] * b.shape[2]
  let sc = m * n
  a.storage.withUnsafeBufferPointer { pa in
    b.storage.withUnsafeBufferPointer { pb in
      c.storage.withUnsafeMutableBufferPointer { pc in
        for i in 0..<batch {
          BLAS.sgemm(
            transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
            alpha: 1, a: pa.baseAddress! + i * sa, lda: a.shape[2], b: pb.baseAddress! + i * sb,
            ldb: b.shape[2], beta: 0, c: pc.baseAddress! + i * sc, ldc: n)
        }
      }
    }
  }
  return c
}

@usableFromInline
func matmulPlain(_ a: Tensor, _ b: Tensor, _ tA: Bool, _ tB: Bool) -> Tensor {
  matmulForward(a, b, transposeA: tA, transposeB: tB)
}
