# The tagwatch service: one image, run as `tagwatch all` or as a single part (api, ingest, worker).
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json .npmrc ./
RUN npm install --no-audit --no-fund --omit=dev
COPY src ./src
COPY ingest ./ingest
COPY migrations ./migrations
COPY bin ./bin
COPY tsconfig.json ./
USER node
EXPOSE 8080
ENTRYPOINT ["bin/tagwatch"]
CMD ["all"]
