# start.sh -- sourced by tests/nginx.sh and bench/bench_lua.sh: start and stop nginx
# with the example app in the foreground, in the background of the shell.
#   nginx_start ROOT DIR LIB DATA_DIR WORKERS
# writes DIR/nginx.conf (as root: test files need not be world-readable),
# picks a free port on 127.0.0.1, and sets PORT and NGINX_PID.
nginx_start() {
    PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$2/logs" "$2/tmp"
    {
        echo "user root;"
        sed -e "s|@PORT@|$PORT|g" -e "s|@LUA_DIR@|$1/examples/openresty|g" \
            -e "s|@BINDING_DIR@|$1/bindings/lua|g" -e "s|@CXENGINE_LIB@|$3|g" \
            -e "s|@DATA_DIR@|$4|g" -e "s|@WORKERS@|$5|g" \
            "$1/examples/openresty/nginx.conf.in"
    } > "$2/nginx.conf"
    nginx -p "$2/" -c "$2/nginx.conf" -g 'daemon off;' \
        >"$2/logs/stdout.log" 2>&1 &
    NGINX_PID=$!
}

# nginx_stop: stop NGINX_PID (if set): TERM, up to 5 s for the workers
# to finish, then KILL.  Returns 1 if TERM was not enough.
nginx_stop() {
    [ -n "$NGINX_PID" ] || return 0
    kill "$NGINX_PID" 2>/dev/null
    _i=0
    while kill -0 "$NGINX_PID" 2>/dev/null && [ $_i -lt 50 ]; do
        sleep 0.1; _i=$((_i + 1))
    done
    if kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -9 "$NGINX_PID" 2>/dev/null
        NGINX_PID=
        return 1
    fi
    NGINX_PID=
}
