#!/bin/sh
# tests/tls/mkcerts.sh DIR - the TLS tests' certificates, made fresh (ECDSA
# P-256) into DIR by each test that needs them; nothing private is committed.
#   ca.pem/ca.key          a CA ("loom test CA")
#   server.pem/server.key  localhost, 127.0.0.1 and ::1, signed by the CA
#   client.pem/client.key  a client certificate signed by the CA
#   expired.pem/.key       localhost, expired yesterday
#   other.pem/other.key    other.example only (a name mismatch for localhost)
#   self.pem/self.key      localhost, self-signed
#   ca2.pem/ca2.key        another CA, which signed nothing above
set -eu
d=$1
mkdir -p "$d"
cd "$d"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ca() {
    key "$1.key"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 3 -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}
# leaf NAME SUBJECT SAN DAYS
leaf() {
    key "$1.key"
    openssl req -new -key "$1.key" -subj "$2" -out "$1.csr" 2>/dev/null
    printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth,clientAuth\n' \
        "$3" >"$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days "$4" \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
ca ca "loom test CA"
ca ca2 "another CA"
leaf server "/CN=localhost" "DNS:localhost,IP:127.0.0.1,IP:::1" 3
leaf client "/CN=loom client" "DNS:client" 3
leaf expired "/CN=localhost" "DNS:localhost,IP:127.0.0.1" -1
leaf other "/CN=other.example" "DNS:other.example" 3
key self.key
openssl req -x509 -new -key self.key -subj "/CN=localhost" -days 3 -out self.pem \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" 2>/dev/null
