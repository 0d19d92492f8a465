"""Matrix products callable from inside Numba kernels, through SciPy's BLAS.

A recurrent layer's time loop is 28 tiny products, each followed by a small gate kernel.  Run
from Python, every step pays for two calls into compiled code, and a loop split across threads
pays for a hand-off at every step.  With the product callable from Numba, the whole loop is one
compiled function: one call per sequence, and threads that each run the loop over their own
rows of the batch from start to end.

How: :mod:`scipy.linalg.cython_blas` exports BLAS's Fortran ``sgemm`` / ``dgemm`` for compiled
code, on every platform SciPy's wheels install on (OpenBLAS on Linux and Windows, Accelerate
or OpenBLAS on macOS); Numba's ``get_cython_function_address`` gives their addresses - the way
Numba's own documentation binds Cython functions.  We register them with LLVM under names of our
own, and kernels refer to those names, not to an address, so Numba can cache them on disk: the
names are bound again in every new process when this module is imported.  A kernel cached by an
older version of this module is never loaded (:mod:`nn.kernels.caching`), so these names and
their signature are free to change.

The Fortran interface is column-major and takes every argument by pointer.  A row-major
``C = op(A) op(B)`` is, read column-major, ``C^T = op(B)^T op(A)^T``: the same call with the two
operands (and M, N) swapped and each transpose flag kept - see :func:`_fortran_gemm_intrinsic`.

    gemm(a, b, c)          c (M, N) = a (M, K) @ b (K, N)
    gemm_at_add(a, b, c)   c (M, N) += a (K, M)^T @ b (K, N)
    gemm_general(a, b, c, a_transposed, b_transposed, accumulate)   c (+)= op(a) @ op(b)
Rows of a 2-D slice ``x[lo:hi]`` of a C-contiguous array are contiguous, so a kernel can pass
a block of a batch without copying.  The caller keeps BLAS on one thread (see
:func:`nn.threads.blas_threads`) when several Numba threads call these at once.
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import get_cython_function_address, intrinsic

from nn.scipy_blas import MODULE as CYTHON_BLAS
from nn.scipy_blas import load_cython_blas

# Transpose flags as the kernels pass them (cblas.h's values, kept from the first version).
_NO_TRANS, _TRANS = 111, 112

# Our names for SciPy's sgemm / dgemm; the cached machine code refers to these.
_SGEMM_SYMBOL = "nn_kernels_blas_fortran_sgemm"
_DGEMM_SYMBOL = "nn_kernels_blas_fortran_dgemm"

load_cython_blas()   # by itself, not all of scipy.linalg (0.17 s): see nn.scipy_blas
llvm.add_symbol(_SGEMM_SYMBOL, get_cython_function_address(CYTHON_BLAS, "sgemm"))
llvm.add_symbol(_DGEMM_SYMBOL, get_cython_function_address(CYTHON_BLAS, "dgemm"))
AVAILABLE = True   # SciPy is a runtime dependency: BLAS is always there


def _fortran_gemm_intrinsic(symbol, real):
    """An intrinsic computing the row-major C = op(A) op(B) + beta C through the Fortran
    ?gemm(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) named ``symbol``.

    Arguments as the kernels pass them: trans flags (_TRANS or _NO_TRANS), M, N, K, the arrays'
    addresses as integers (array.ctypes.data) with their row strides in elements, beta as a
    float64.  Column-major, the call computes C^T (N, M) = op(B)^T (N, K) op(A)^T (K, M): B goes
    first, with its own flag ('T' iff B is transposed in the row-major product), then A.
    """

    @intrinsic
    def call(typingctx, trans_a, trans_b, m, n, k, a_address, lda, b_address, ldb, beta,
             c_address, ldc):
        signature = types.void(types.int64, types.int64, types.int64, types.int64, types.int64,
                               types.uintp, types.int64, types.uintp, types.int64, types.float64,
                               types.uintp, types.int64)

        def codegen(context, builder, sig, args):
            char, integer = ir.IntType(8), ir.IntType(32)   # Fortran CHARACTER, INTEGER
            real_pointer = real.as_pointer()
            function_type = ir.FunctionType(ir.VoidType(), [
                char.as_pointer(), char.as_pointer(), integer.as_pointer(), integer.as_pointer(),
                integer.as_pointer(), real_pointer, real_pointer, integer.as_pointer(),
                real_pointer, integer.as_pointer(), real_pointer, real_pointer,
                integer.as_pointer()])
            function = cgutils.get_or_insert_function(builder.module, function_type, symbol)
            trans_a_, trans_b_, m_, n_, k_, a_, lda_, b_, ldb_, beta_, c_, ldc_ = args

            def by_reference(value):   # Fortran takes every argument by address
                return cgutils.alloca_once_value(builder, value)

            def flag(trans):           # 'T' (84) if trans == _TRANS else 'N' (78)
                is_transposed = builder.icmp_signed("==", trans, ir.Constant(trans.type, _TRANS))
                return by_reference(builder.select(is_transposed, ir.Constant(char, ord("T")),
                                                   ir.Constant(char, ord("N"))))

            def int32(value):
                return by_reference(builder.trunc(value, integer))

            if isinstance(real, ir.FloatType):
                beta_ = builder.fptrunc(beta_, real)
            builder.call(function, [
                flag(trans_b_), flag(trans_a_), int32(n_), int32(m_), int32(k_),
                by_reference(ir.Constant(real, 1.0)),
                builder.inttoptr(b_, real_pointer), int32(ldb_),
                builder.inttoptr(a_, real_pointer), int32(lda_),
                by_reference(beta_), builder.inttoptr(c_, real_pointer), int32(ldc_)])
            return context.get_dummy_value()
        return signature, codegen
    return call


_sgemm = _fortran_gemm_intrinsic(_SGEMM_SYMBOL, ir.FloatType())
_dgemm = _fortran_gemm_intrinsic(_DGEMM_SYMBOL, ir.DoubleType())


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
    if k == 0 or not usable:
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


@njit(cache=True, nogil=True)
def gemm_general(a, b, c, a_transposed, b_transposed, accumulate):
    """c (+)= op(a) @ op(b), op = transpose or not, added to c when ``accumulate``.  Same
    conditions as :func:`gemm`."""
    _gemm(a, b, c, a_transposed, b_transposed, accumulate)
