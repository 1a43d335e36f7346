# embed.cmake - writes the bytes of IN as `const char <NAME>[]` into OUT (NAME defaults to
# smm_lua_script).
if(NOT NAME)
    set(NAME smm_lua_script)
endif()
get_filename_component(src ${IN} NAME)
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from lua/${src} by embed.cmake; do not edit */\n"
                  "const char ${NAME}[] = {${bytes} 0x00};\n")
