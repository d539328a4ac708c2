# start.sh -- sourced by tests/nginx.sh and bench/bench_lua.sh: start nginx
# with the example app in the foreground, in the background of the shell.
#   nginx_start ROOT DIR LIB ENGINE WORKERS
# writes DIR/nginx.conf (as root: test files need not be world-readable),
# picks a free port on 127.0.0.1, and sets PORT and NGINX_PID.
nginx_start() {
    PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$2/logs" "$2/tmp"
    {
        echo "user root;"
        sed -e "s|@PORT@|$PORT|g" -e "s|@LUA_DIR@|$1/examples/openresty|g" \
            -e "s|@BINDING_DIR@|$1/bindings/lua|g" -e "s|@CXENGINE_LIB@|$3|g" \
            -e "s|@ENGINE_FILE@|$4|g" -e "s|@WORKERS@|$5|g" \
            "$1/examples/openresty/nginx.conf.in"
    } > "$2/nginx.conf"
    nginx -p "$2/" -c "$2/nginx.conf" -g 'daemon off;' \
        >"$2/logs/stdout.log" 2>&1 &
    NGINX_PID=$!
}
