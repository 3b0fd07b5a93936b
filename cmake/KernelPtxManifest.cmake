# Writes the manifest of one prebuilt PTX file, so the engine can prove the PTX was built from exactly the
# kernel sources it embeds (NativeMi.Compute.Cuda.Native.PrebuiltKernels reads it).
#
#   cmake -DSOURCE=<kernels/x.cu> -DARCHITECTURE=compute_90 -DPTX=<x.compute_90.ptx> -DOUTPUT=<x.compute_90.ptx.manifest>
#         [-DCOMPILER="nvcc 11.8.89"] -P cmake/KernelPtxManifest.cmake
#
# The manifest is ASCII text, one "key value" pair a line after the format line:
#   nativemi-kernel-ptx 1
#   source x.cu
#   architecture compute_90
#   source-sha256 <hex>
#   ptx-sha256 <hex>      (SHA-256 of the PTX file's bytes)
#   compiler nvcc 11.8.89 (informational)
#
# source-sha256, version 1 (PrebuiltKernels.SourceHash computes the same from the embedded text):
#   lines  = "<x.cu> <SHA-256 of x.cu's bytes>\n"
#            then for every *.cuh in x.cu's folder, sorted by name in byte order: "<y.cuh> <SHA-256 of y.cuh's bytes>\n"
#            (bare file names, lowercase hex; every header counts, included or not, as the engine embeds them all)
#   source-sha256 = lowercase hex SHA-256 of the ASCII bytes of lines
# Hashing each file's bytes first keeps the definition free of CMake's string rules (semicolons, no NUL bytes).
# Without PTX (or OUTPUT) the script only prints "source-sha256 <hex>", which the tests compare with the engine's.
cmake_minimum_required(VERSION 3.18)

if(NOT DEFINED SOURCE)
  message(FATAL_ERROR "KernelPtxManifest.cmake needs -DSOURCE=<kernel .cu file>")
endif()
get_filename_component(source_folder "${SOURCE}" DIRECTORY)
get_filename_component(source_name "${SOURCE}" NAME)
file(GLOB headers "${source_folder}/*.cuh")
# One folder, so sorting full paths (STRING order is byte order) sorts the names.
list(SORT headers COMPARE STRING)

file(SHA256 "${SOURCE}" file_hash)
set(lines "${source_name} ${file_hash}\n")
foreach(header IN LISTS headers)
  get_filename_component(header_name "${header}" NAME)
  file(SHA256 "${header}" file_hash)
  string(APPEND lines "${header_name} ${file_hash}\n")
endforeach()
string(SHA256 source_hash "${lines}")

if(NOT DEFINED PTX OR NOT DEFINED OUTPUT)
  message("source-sha256 ${source_hash}")
  return()
endif()
if(NOT DEFINED ARCHITECTURE)
  message(FATAL_ERROR "KernelPtxManifest.cmake needs -DARCHITECTURE=compute_NN with -DPTX")
endif()
file(SHA256 "${PTX}" ptx_hash)
set(manifest "nativemi-kernel-ptx 1\nsource ${source_name}\narchitecture ${ARCHITECTURE}\nsource-sha256 ${source_hash}\nptx-sha256 ${ptx_hash}\n")
if(DEFINED COMPILER)
  string(APPEND manifest "compiler ${COMPILER}\n")
endif()
file(WRITE "${OUTPUT}" "${manifest}")
