# The ros-jazzy-* pip wheels were built under manylinux, and their exported CMake targets carry
# that machine's include paths (/opt/python/cpXY-cpXY/include/pythonX.Y, .../numpy/_core/include).
# At the end of configuration, rewrite them on every imported target to this interpreter's
# paths. Harmless with a regular ROS install (nothing matches).
find_package(Python3 REQUIRED COMPONENTS Interpreter Development NumPy)

function(_lw_fix_ros_wheel_paths)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(_includes AND "${_includes}" MATCHES "/opt/python/")
      set(_fixed "")
      foreach(_dir IN LISTS _includes)
        if(_dir MATCHES "^/opt/python/.*/numpy/_core/include")
          list(APPEND _fixed ${Python3_NumPy_INCLUDE_DIRS})
        elseif(_dir MATCHES "^/opt/python/.*/include/python3")
          list(APPEND _fixed ${Python3_INCLUDE_DIRS})
        else()
          list(APPEND _fixed "${_dir}")
        endif()
      endforeach()
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _lw_fix_ros_wheel_paths)

# A venv inside the source tree (make setup puts it at ./.venv) puts numpy's include directory
# under CMAKE_SOURCE_DIR, and CMake refuses to export such a path from the generated
# rosidl targets. Consumers of the installed package never need it (they use their own
# numpy), so keep those paths for this build only.
function(_lw_keep_source_paths_build_only)
  get_property(_targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY BUILDSYSTEM_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_type ${_target} TYPE)
    if(_type STREQUAL "UTILITY")
      continue()
    endif()
    get_target_property(_includes ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _includes)
      continue()
    endif()
    set(_fixed "")
    foreach(_dir IN LISTS _includes)
      string(FIND "${_dir}" "${CMAKE_SOURCE_DIR}/" _pos)
      if(_pos EQUAL 0)
        list(APPEND _fixed "$<BUILD_INTERFACE:${_dir}>")
      else()
        list(APPEND _fixed "${_dir}")
      endif()
    endforeach()
    set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _lw_keep_source_paths_build_only)
