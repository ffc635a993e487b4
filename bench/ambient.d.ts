// bittorrent-dht ships no types; the comparison uses only its constructor, listen/addNode/lookup and events.
declare module 'bittorrent-dht'
