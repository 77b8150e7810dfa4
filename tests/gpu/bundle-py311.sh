#!/usr/bin/env bash
# Debian 12's own Python 3.11 with PyGObject, GStreamer's typelibs and numpy,
# packed into the GPU bundle so that the Python recipes
# (examples/appsink-numpy.py, appsrc-numpy.py) run on the GPU machine, whose
# Python 3.12 has no PyGObject (and no network to get it). Called by
# tests/gpu/bundle.sh after ../shared/gpu/bundle, before its gzip step:
#   tests/gpu/bundle-py311.sh OUT_DIR        (OUT_DIR: .gpu)
#
# Writes:
#   OUT_DIR/py311.tar.xz   bin/python3.11, lib/python3.11 (the stdlib),
#                          lib/python3/dist-packages (gi, numpy),
#                          lib/girepository-1.0 (typelibs), lib/*.so.*
#                          (libgirepository, BLAS/LAPACK, gfortran, ...)
#   OUT_DIR/python3.11     the interpreter: sources OUT_DIR/env.sh (which
#                          unpacks py311.tar.xz once, in place), sets
#                          PYTHONHOME, PYTHONPATH, GI_TYPELIB_PATH and
#                          LD_LIBRARY_PATH for itself only (the GPU
#                          machine's python3 must not see them), runs it
#   OUT_DIR/env.sh         gets the unpacking step and
#                          CUDALINK_PYTHON=OUT_DIR/python3.11, which
#                          tests/gpu/gpu_recipes runs the Python recipes with
#
# The packages come from `apt-get download` (no root needed: the Debian
# machine's apt lists, and its network), unpacked with dpkg-deb -x, never
# installed. Everything the ELF files load that OUT_DIR/lib (GStreamer's
# closure) does not already hold is copied from this machine, as
# ../shared/gpu/bundle does; glibc stays the GPU machine's.
# Left out to stay small: the stdlib's tests, pydoc_data, venv, sqlite3,
# curses, and the extension modules that need libraries we do not carry
# (_ssl, _hashlib, _sqlite3, _curses, _dbm, readline, nis, _crypt, _uuid:
# hashlib falls back to its built-in hashes, uuid to pure Python); numpy's
# tests (and core/_simd, a test module), headers, f2py, distutils and type
# stubs.
set -euo pipefail
out=${1:?usage: $0 OUT_DIR}
out=$(cd "$out" && pwd)
[ -e "$out/env.sh" ] || { echo "bundle-py311: $out/env.sh missing: run ../shared/gpu/bundle first" >&2; exit 2; }
arch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
pkgs="python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3-gi gir1.2-glib-2.0
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 libgirepository-1.0-1 python3-numpy
  libblas3 liblapack3 libgfortran5 libquadmath0"

tmp=$(mktemp -d /tmp/cudalink-py311-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/debs" "$tmp/root"
# shellcheck disable=SC2086
if ! (cd "$tmp/debs" && apt-get download -q $pkgs) > "$tmp/apt.log" 2>&1; then
  grep -v "unsandboxed" "$tmp/apt.log" >&2 || true
  echo "bundle-py311: apt-get download failed (stale lists? try apt-get update)" >&2
  exit 1
fi
for d in "$tmp"/debs/*.deb; do dpkg-deb -x "$d" "$tmp/root"; done
src=$tmp/root/usr
py=$tmp/py311
mkdir -p "$py/bin" "$py/lib/python3/dist-packages" "$py/lib/girepository-1.0"

cp "$src/bin/python3.11" "$py/bin/"
rm -f "$src/lib/python3.11/sitecustomize.py"        # a link to /etc (apport's hook)
cp -rL "$src/lib/python3.11" "$py/lib/"             # links become plain files
rm -rf "$py/lib/python3.11/dist-packages"           # a duplicate of numpy's core module
(cd "$py/lib/python3.11" && rm -rf test pydoc_data venv ensurepip idlelib tkinter turtledemo \
  lib2to3 sqlite3 curses turtle.py EXTERNALLY-MANAGED)
(cd "$py/lib/python3.11/lib-dynload" && rm -f _ssl.* _hashlib.* _sqlite3.* _curses*.* _dbm.* \
  _gdbm.* readline.* nis.* _crypt.* _uuid.* _test*.* _ctypes_test.* xxlimited*.* _xxtestfuzz.*)
for p in gi numpy; do cp -rL "$src/lib/python3/dist-packages/$p" "$py/lib/python3/dist-packages/"; done
(cd "$py/lib/python3/dist-packages/numpy" && find . -depth -type d -name tests -exec rm -rf {} + &&
  rm -rf core/include core/_simd.*.so f2py distutils typing/tests _pyinstaller doc &&
  find . \( -name '*.pyi' -o -name '*.h' -o -name '*.c' -o -name '*.pxd' -o -name '*.txt' \) -delete)
cp "$src/lib/$arch"/girepository-1.0/*.typelib "$py/lib/girepository-1.0/"
# the libraries under their sonames, as plain files (BLAS/LAPACK live in
# alternatives folders on Debian)
cp -L "$src/lib/$arch/libgirepository-1.0.so.1" "$src/lib/$arch/blas/libblas.so.3" \
  "$src/lib/$arch/lapack/liblapack.so.3" "$src/lib/$arch/libgfortran.so.5" \
  "$src/lib/$arch/libquadmath.so.0" "$py/lib/"
find "$py" -name __pycache__ -type d -prune -exec rm -rf {} +
link=$(find "$py" -type l -print -quit)
if [ -n "$link" ]; then
  echo "bundle-py311: a symbolic link left in the tree: $link" >&2; exit 1
fi

# the ldd closure: what neither py311/lib nor OUT_DIR/lib holds comes from
# this machine; glibc and the driver stay the GPU machine's
skip='^(linux-vdso|ld-linux|libc\.so|libm\.so|libdl\.so|libpthread\.so|librt\.so|libresolv\.so|libutil\.so|libcuda\.so|libnvidia)'
plain() { # a carried library, gzipped or not
  [ -e "$1" ] || [ -e "$1.gz" ]
}
for _ in 1 2 3; do   # copied libraries have their own dependencies
  added=0
  while read -r elf; do
    while read -r name _ path; do
      [[ $name =~ $skip ]] && continue
      plain "$py/lib/$name" || plain "$out/lib/$name" && continue
      if [ "$path" = "not" ]; then echo "bundle-py311: $elf needs $name, not found here" >&2; exit 1; fi
      cp -L "$path" "$py/lib/$name"
      added=$((added + 1))
      echo "bundle-py311: + $name (for ${elf#"$py"/})" >&2
    done < <(LD_LIBRARY_PATH="$py/lib:$out/lib" ldd "$elf" 2>/dev/null | awk '/=>/ { print $1, $2, $3 }')
  done < <(find "$py" -type f \( -name '*.so' -o -name '*.so.*' -o -path '*/bin/*' \) \
             -exec sh -c 'head -c4 "$1" | grep -q ELF' _ {} \; -print)
  if [ "$added" = 0 ]; then break; fi
done

tar -C "$tmp" -cJf "$out/py311.tar.xz" py311
unpacked=$(du -sm "$py" | cut -f1)

cat > "$out/python3.11" <<'WRAP'
#!/usr/bin/env bash
# Debian 12's Python 3.11 with PyGObject, GStreamer's typelibs and numpy
# (tests/gpu/bundle-py311.sh), for the Python recipes on a machine without
# them: .gpu/python3.11 examples/appsink-numpy.py NAME. Its settings stay in
# this process and its children: the machine's own python3 never sees them.
# PYTHONPATH is replaced, not extended: the machine's is for its Python 3.12.
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_here/env.sh"        # the bundled GStreamer, the driver's folder; unpacks py311/
_py=$_here/py311
export PYTHONHOME=$_py PYTHONPATH=$_py/lib/python3/dist-packages PYTHONNOUSERSITE=1
export GI_TYPELIB_PATH=$_py/lib/girepository-1.0
export LD_LIBRARY_PATH=$_py/lib:$LD_LIBRARY_PATH
if [ ! -x "$_py/bin/python3.11" ]; then
  echo "$0: $_py could not be unpacked from py311.tar.xz (needs tar and xz, or python3 with lzma)" >&2
  exit 2
fi
exec "$_py/bin/python3.11" "$@"
WRAP
chmod +x "$out/python3.11"

cat >> "$out/env.sh" <<'ENV'
# tests/gpu/bundle-py311.sh: Python 3.11 + PyGObject + numpy, unpacked once, in
# place (tar and xz, else python3's tarfile); run it as $CUDALINK_PYTHON
if [ -e "$_gpu/py311.tar.xz" ] && [ ! -x "$_gpu/py311/bin/python3.11" ]; then
  _t=$_gpu/py311.tmp
  rm -rf "$_gpu/py311" "$_t" && mkdir "$_t" &&
  { tar -C "$_t" -xJf "$_gpu/py311.tar.xz" 2>/dev/null ||
    { rm -rf "$_t" && mkdir "$_t" && python3 -c "import sys, tarfile as t; t.open(sys.argv[1]).extractall(sys.argv[2], **({'filter': 'data'} if hasattr(t, 'data_filter') else {}))" "$_gpu/py311.tar.xz" "$_t"; }; } &&
  mv "$_t/py311" "$_gpu/py311" && rm -rf "$_t" "$_gpu/py311.tar.xz"
fi
export CUDALINK_PYTHON="$_gpu/python3.11"
ENV
echo "bundle-py311: $out/py311.tar.xz $(du -sm "$out/py311.tar.xz" | cut -f1) MB ($unpacked MB unpacked)" >&2
