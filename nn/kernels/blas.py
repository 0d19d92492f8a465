"""Matrix products callable from inside Numba kernels, through the BLAS that NumPy already loaded.

A recurrent layer's time loop is 28 tiny products, each followed by a small gate kernel.  Run
from Python, every step pays for two calls into compiled code, and a loop split across threads
pays for a hand-off at every step.  With the product callable from Numba, the whole loop is one
compiled function: one call per sequence, and threads that each run the loop over their own
rows of the batch from start to end.

How: NumPy's wheels ship OpenBLAS, whose ``cblas_sgemm`` / ``cblas_dgemm`` we find among the
libraries mapped into this process and register with LLVM under names of our own.  Kernels
refer to those names, not to an address, so Numba can cache them on disk: the name is bound
again to the address in every new process when this module is imported.

Without that OpenBLAS (another BLAS, or no /proc to find it in) :data:`AVAILABLE` is False,
:func:`gemm` runs plain loops (correct, slow), and our names are bound to :func:`_loop_cblas`,
a compiled triple loop with cblas_?gemm's arguments: machine code cached on a machine with
OpenBLAS and loaded where it is missing (the flag is frozen into the cache) still computes the
right product.

    gemm(a, b, c)          c (M, N) = a (M, K) @ b (K, N)
    gemm_at_add(a, b, c)   c (M, N) += a (K, M)^T @ b (K, N)
    stacked_gemm(a, b, c, a_transposed, b_transposed)   c[s] = op(a[s]) @ op(b[s]), in parallel
Rows of a 2-D slice ``x[lo:hi]`` of a C-contiguous array are contiguous, so a kernel can pass
a block of a batch without copying.  The caller keeps BLAS on one thread (see
:func:`nn.threads.blas_threads`) when several Numba threads call these at once.
"""
import ctypes

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import cfunc, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

# CBLAS enumerations (cblas.h)
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

# Our names for the two functions; the cached machine code refers to these.
_SGEMM_SYMBOL = "nn_kernels_blas_sgemm"
_DGEMM_SYMBOL = "nn_kernels_blas_dgemm"

# NumPy's wheels bundle an OpenBLAS with 64-bit integers whose symbols carry a scipy_ prefix
# and a 64_ suffix; an unprefixed 64-bit build is taken too.  (A 32-bit-integer OpenBLAS, as
# some systems' NumPy links, is not used: its calls would need other machine code.)
_CANDIDATES = (("scipy_cblas_sgemm64_", "scipy_cblas_dgemm64_"),
               ("cblas_sgemm64_", "cblas_dgemm64_"))


def _find_cblas():
    """(sgemm address, dgemm address) from the OpenBLAS NumPy loaded, or None."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = sorted({line.split()[-1] for line in maps if "openblas" in line.lower()})
    except OSError:
        return None
    for path in paths:
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for single, double in _CANDIDATES:
            sgemm, dgemm = getattr(library, single, None), getattr(library, double, None)
            if sgemm is not None and dgemm is not None:
                return (ctypes.cast(sgemm, ctypes.c_void_p).value,
                        ctypes.cast(dgemm, ctypes.c_void_p).value)
    return None


def _loop_cblas_signature(real):
    """cblas_?gemm's C signature, with 64-bit integers."""
    pointer = types.CPointer(real)
    return types.void(types.int32, types.int32, types.int32, types.int64, types.int64,
                      types.int64, real, pointer, types.int64, pointer, types.int64, real,
                      pointer, types.int64)


def _loop_cblas(order, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """cblas_?gemm as plain loops, row-major only (the one order our kernels pass):
    C = alpha op(A) op(B) + beta C, with leading dimensions lda, ldb, ldc."""
    for i in range(m):
        for j in range(n):
            total = alpha * 0
            for p in range(k):
                left = a[p * lda + i] if trans_a == _TRANS else a[i * lda + p]
                right = b[j * ldb + p] if trans_b == _TRANS else b[p * ldb + j]
                total += left * right
            c[i * ldc + j] = alpha * total + (beta * c[i * ldc + j] if beta != 0 else 0)


_FOUND = _find_cblas()
AVAILABLE = _FOUND is not None
if AVAILABLE:
    llvm.add_symbol(_SGEMM_SYMBOL, _FOUND[0])
    llvm.add_symbol(_DGEMM_SYMBOL, _FOUND[1])
else:
    _LOOP_SGEMM = cfunc(_loop_cblas_signature(types.float32), cache=True)(_loop_cblas)
    _LOOP_DGEMM = cfunc(_loop_cblas_signature(types.float64), cache=True)(_loop_cblas)
    llvm.add_symbol(_SGEMM_SYMBOL, _LOOP_SGEMM.address)
    llvm.add_symbol(_DGEMM_SYMBOL, _LOOP_DGEMM.address)


def _cblas_gemm_intrinsic(symbol, real):
    """An intrinsic calling cblas_?gemm(RowMajor, trans_a, trans_b, M, N, K, 1, A, lda, B, ldb,
    beta, C, ldc) by ``symbol``: C = op(A) op(B) + beta C.  Pointers arrive as integers
    (array.ctypes.data), beta as a float64."""

    @intrinsic
    def call(typingctx, trans_a, trans_b, m, n, k, a_address, lda, b_address, ldb, beta,
             c_address, ldc):
        signature = types.void(types.int64, types.int64, types.int64, types.int64, types.int64,
                               types.uintp, types.int64, types.uintp, types.int64, types.float64,
                               types.uintp, types.int64)

        def codegen(context, builder, sig, args):
            enum, blas_int = ir.IntType(32), ir.IntType(64)
            pointer = ir.IntType(8).as_pointer()
            function_type = ir.FunctionType(ir.VoidType(), [
                enum, enum, enum, blas_int, blas_int, blas_int, real, pointer, blas_int,
                pointer, blas_int, real, pointer, blas_int])
            function = cgutils.get_or_insert_function(builder.module, function_type, symbol)
            trans_a_, trans_b_, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args
            if isinstance(real, ir.FloatType):
                beta_ = builder.fptrunc(beta_, real)
            builder.call(function, [
                ir.Constant(enum, _ROW_MAJOR), builder.trunc(trans_a_, enum),
                builder.trunc(trans_b_, enum), m_, n_, k_,
                ir.Constant(real, 1.0), builder.inttoptr(a_, pointer), lda_,
                builder.inttoptr(b_, pointer), ldb_, beta_,
                builder.inttoptr(c_, pointer), ldc_])
            return context.get_dummy_value()
        return signature, codegen
    return call


_sgemm = _cblas_gemm_intrinsic(_SGEMM_SYMBOL, ir.FloatType())
_dgemm = _cblas_gemm_intrinsic(_DGEMM_SYMBOL, ir.DoubleType())


@njit(cache=True, inline="always")
def _loop_gemm(a, b, c, a_transposed, b_transposed, accumulate):
    """The fallback: c (+)= op(a) @ op(b) as three plain loops."""
    inner = a.shape[0] if a_transposed else a.shape[1]
    for i in range(c.shape[0]):
        for j in range(c.shape[1]):
            if not accumulate:
                c[i, j] = 0
            for p in range(inner):
                c[i, j] += (a[p, i] if a_transposed else a[i, p]) * (b[j, p] if b_transposed
                                                                     else b[p, j])


@njit(cache=True, inline="always")
def _leading_dimension(x):
    """BLAS's row stride of a 2-D array in elements (so a block of rows x[lo:hi] needs no copy),
    or 0 if its rows are not contiguous.  A length-1 axis may carry any stride in NumPy
    ("relaxed strides"), and BLAS still wants a leading dimension >= the row length."""
    rows, columns = x.shape
    if columns > 1 and x.strides[1] != x.itemsize:
        return 0
    if rows == 1:
        return max(columns, 1)
    stride = x.strides[0] // x.itemsize
    return stride if stride >= columns and x.strides[0] % x.itemsize == 0 else 0


@njit(cache=True, inline="always")
def _gemm(a, b, c, a_transposed, b_transposed, accumulate):
    m, n = c.shape
    k = a.shape[0] if a_transposed else a.shape[1]
    if m == 0 or n == 0:
        return
    lda, ldb, ldc = _leading_dimension(a), _leading_dimension(b), _leading_dimension(c)
    usable = lda > 0 and ldb > 0 and ldc > 0 and a.itemsize == b.itemsize == c.itemsize
    if not AVAILABLE or k == 0 or not usable:
        _loop_gemm(a, b, c, a_transposed, b_transposed, accumulate)
        return
    trans_a = _TRANS if a_transposed else _NO_TRANS
    trans_b = _TRANS if b_transposed else _NO_TRANS
    beta = 1.0 if accumulate else 0.0
    if c.itemsize == 4:   # float32
        _sgemm(trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)
    else:
        _dgemm(trans_a, trans_b, m, n, k, a.ctypes.data, lda, b.ctypes.data, ldb, beta,
               c.ctypes.data, ldc)


@njit(cache=True, nogil=True)
def gemm(a, b, c):
    """c (M, N) = a (M, K) @ b (K, N) through BLAS when every row is contiguous (last stride one
    element) and the three share a float type; otherwise (never on the kit's own calls) by
    the fallback loops."""
    _gemm(a, b, c, False, False, False)


@njit(cache=True, nogil=True)
def gemm_at_add(a, b, c):
    """c (M, N) += a (K, M)^T @ b (K, N): a sum of outer products, e.g. a weight gradient
    accumulated over blocks of a batch.  Same conditions as :func:`gemm`."""
    _gemm(a, b, c, True, False, True)


@njit(cache=True, parallel=True)
def stacked_gemm(a, b, c, a_transposed, b_transposed):
    """c[s] = op(a[s]) @ op(b[s]) for every s of a stack (S, ., .), op = transpose or not.

    One whole product per thread at a time, in parallel over the stack, each product on one
    BLAS thread (the caller sets it: nn.threads.blas_threads(1)).  For a stack of small
    products (Winograd's 16) this beats splitting each product between threads, which is what
    np.matmul does.
    """
    for s in prange(c.shape[0]):
        _gemm(a[s], b[s], c[s], a_transposed, b_transposed, False)
