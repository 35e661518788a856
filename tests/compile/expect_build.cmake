# Builds one target of this build tree and checks the result:
#   -DBUILD_DIR=… -DTARGET=… -DSOURCE=… -DEXPECT=success
#   -DBUILD_DIR=… -DTARGET=… -DSOURCE=… -DEXPECT=<regex the diagnostic must match>
# A failure only counts when the compiler reported it in SOURCE itself, so an
# unrelated breakage cannot make a negative test pass.
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
if(EXPECT STREQUAL "success")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${SOURCE} was expected to compile:\n${out}")
  endif()
  message(STATUS "${SOURCE} compiles")
  return()
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled, but it must not: the tenant boundary is not enforced")
endif()
get_filename_component(name ${SOURCE} NAME)
# "fatal error:" too: an include the include path does not reach.
if(NOT out MATCHES "${name}:[0-9]+:[0-9]+: (fatal )?error:")
  message(FATAL_ERROR "${SOURCE}: the build failed, but not in this source:\n${out}")
endif()
if(NOT out MATCHES "${EXPECT}")
  message(FATAL_ERROR "${SOURCE}: failed without the expected diagnostic /${EXPECT}/:\n${out}")
endif()
string(REGEX MATCH "[^\n]*${name}:[0-9]+:[0-9]+: (fatal )?error:[^\n]*(${EXPECT})[^\n]*" line "${out}")
message(STATUS "refused as expected: ${line}")
