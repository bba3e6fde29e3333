# compare_plain.cmake - run a kill_app scenario linked with Open MPI alone and
# with libcrmpi (checkpointing every step, uninterrupted, fresh directory);
# both must print the same line.
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${MPIEXEC} -np ${NP} ${PLAIN} ${SCENARIO} 24
                WORKING_DIRECTORY ${WORK} OUTPUT_VARIABLE plain RESULT_VARIABLE rc1)
execute_process(COMMAND ${MPIEXEC} -np ${NP} ${CRMPI} ${SCENARIO} 24
                WORKING_DIRECTORY ${WORK} OUTPUT_VARIABLE crmpi RESULT_VARIABLE rc2)
if(NOT rc1 EQUAL 0 OR NOT rc2 EQUAL 0)
  message(FATAL_ERROR "runs failed: plain ${rc1}, crmpi ${rc2}")
endif()
if(NOT plain STREQUAL crmpi OR plain STREQUAL "")
  message(FATAL_ERROR "answers differ:\n plain: ${plain}\n crmpi: ${crmpi}")
endif()
message(STATUS "same answer: ${plain}")
